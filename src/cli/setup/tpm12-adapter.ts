/**
 * TPM 1.2 manufacturing (provisioning.md §2.5) is src/provision/tpm12.ts's. Until that
 * module exists this adapter loads it at run time and reports clearly when it is absent.
 */
import type { CertMaker, TpmLink } from '../../provision/link.js';
import type { SetupArgs } from './options.js';

export interface Tpm12Options {
  readonly createEk: boolean;
  readonly createEkCert: boolean;
  readonly createPlatformCert: boolean;
  readonly takeOwnership: boolean;
  readonly ownerPassword?: string;
  readonly wellKnownOwner: boolean;
  readonly srkPassword?: string;
  readonly wellKnownSrk: boolean;
  readonly lockNvram: boolean;
  readonly writeEkCertFilesDir?: string;
  readonly vmid?: string;
}

type SetupTpm12 = (
  link: TpmLink,
  opts: Tpm12Options,
  certs: CertMaker | undefined,
  log: (line: string) => void,
) => Promise<void>;

export function tpm12Options(a: SetupArgs): Tpm12Options {
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

/** Runs the TPM 1.2 steps, or throws if this build has no TPM 1.2 provisioning. */
export async function runTpm12(
  link: TpmLink,
  opts: Tpm12Options,
  certs: CertMaker | undefined,
  log: (line: string) => void,
): Promise<void> {
  // A computed specifier: the module may not be part of this build yet.
  const spec = '../../provision/tpm12.js';
  let setup: SetupTpm12 | undefined;
  try {
    setup = ((await import(spec)) as { setupTpm12?: SetupTpm12 }).setupTpm12;
  } catch {}
  if (setup === undefined)
    throw new Error('TPM 1.2 setup is not available in this build of tswtpm_setup.');
  await setup(link, opts, certs, log);
}
