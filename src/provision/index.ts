/**
 * `tswtpm/provision`: what tswtpm_setup does, as a library. Manufacture a TPM 2 or 1.2
 * (EKs, certificates in NV, PCR banks, NV lock) on any {@link TpmLink}, with certificates
 * from the swtpm_localca-compatible local CA or a maker of your own.
 *
 * Kept apart from the main entry point: the certificate code loads @peculiar/x509 (and
 * reflect-metadata), which a test suite that only needs `startTpm()` should not pay for.
 *
 * @example
 * import { startTpmInProcess } from 'tswtpm';
 * import { linkOf, localCaCertMaker, setupTpm2, TPM2_SETUP_DEFAULTS } from 'tswtpm/provision';
 * const tpm = await startTpmInProcess({ tpm2: true, args: ['--tpmstate', 'dir=/var/lib/vtpm1'] });
 * await setupTpm2(linkOf(tpm), { ...TPM2_SETUP_DEFAULTS, createEkCert: true },
 *   localCaCertMaker({ configFile: '/etc/swtpm-localca.conf' }), { info: console.log, error: console.error });
 * await tpm.control.shutdown();
 */
import type { TpmLink } from './link.js';
import type { Tpm2SetupOptions } from './tpm2-setup.js';

export type { CertMaker, CertRequest, CertType, TpmLink, TpmSpecInfo } from './link.js';
export { SetupError, type SetupLog, type Tpm2SetupOptions, setupTpm2 } from './tpm2-setup.js';
export { type Tpm12SetupOptions, setupTpm12 } from './tpm12.js';
export {
  type LocalCaMakerOptions,
  LocalCaError,
  buildCertificate,
  localCaCertMaker,
} from './certs/index.js';

/** swtpm_setup's TPM 2 defaults: an RSA-2048 EK and an ECC EK, sha256 banks, nothing else. */
export const TPM2_SETUP_DEFAULTS: Tpm2SetupOptions = {
  createSpk: false,
  ecc: false,
  createEk: true,
  createEkCert: false,
  createPlatformCert: false,
  allowSigning: false,
  decryption: false,
  lockNvram: false,
  rsaKeySize: 2048,
  pcrBanks: 'sha256',
  reconfigure: false,
};

/** The data and control clients of a running TPM (startTpm, startTpmInProcess) as a TpmLink. */
export function linkOf(t: {
  readonly tpm: { transmit(cmd: Uint8Array): Promise<Uint8Array> };
  readonly control: { getInfoText(flags: number): Promise<string> };
}): TpmLink {
  return {
    transmit: (cmd) => t.tpm.transmit(cmd),
    getInfo: (flags) => t.control.getInfoText(flags),
  };
}
