/**
 * The TPM 1.2 run of tswtpm_setup: swtpm_setup's TPM 1.2 options as
 * src/provision/tpm12.ts takes them (provisioning.md §2.5).
 */
import type { Tpm12SetupOptions } from '../../provision/tpm12.js';
import type { SetupArgs } from './options.js';

export { setupTpm12 as runTpm12 } from '../../provision/tpm12.js';

export function tpm12Options(a: SetupArgs): Tpm12SetupOptions {
  const f = a.flags;
  const v = a.values;
  const opt = <K extends string>(k: K, val: string | undefined) =>
    val === undefined ? {} : ({ [k]: val } as Record<K, string>);
  return {
    createEk:
      f.has('createek') ||
      f.has('take-ownership') ||
      f.has('create-ek-cert') ||
      f.has('create-platform-cert'),
    createEkCert: f.has('create-ek-cert'),
    createPlatformCert: f.has('create-platform-cert'),
    takeOwnership: f.has('take-ownership'),
    wellKnownOwner: f.has('owner-well-known'),
    wellKnownSrk: f.has('srk-well-known'),
    lockNvram: f.has('lock-nvram'),
    ...opt('ownerPassword', v.get('ownerpass')),
    ...opt('srkPassword', v.get('srkpass')),
    ...opt('writeEkCertFilesDir', v.get('write-ek-cert-files')),
    ...opt('vmid', v.get('vmid')),
  };
}
