/**
 * TPM 1.2-style result codes (libtpms `tpm_error.h`, TPM_BASE = 0) that swtpm's control
 * channel answers with, plus the TPM 2 codes it builds data-channel errors from.
 * Names are swtpm's so they grep against the man page.
 */
export const TPM_SUCCESS = 0x00;
export const TPM_BAD_PARAMETER = 0x03;
export const TPM_FAIL = 0x09;
export const TPM_BAD_ORDINAL = 0x0a;
export const TPM_KEYNOTFOUND = 0x0d;
export const TPM_BAD_PARAM_SIZE = 0x19;
export const TPM_SIZE = 0x17;
export const TPM_SHA_THREAD = 0x1a;
export const TPM_IOERROR = 0x1f;
export const TPM_ENCRYPT_ERROR = 0x20;
export const TPM_DECRYPT_ERROR = 0x21;
export const TPM_INVALID_POSTINIT = 0x26;
export const TPM_BAD_KEY_PROPERTY = 0x28;
export const TPM_BAD_DATASIZE = 0x2b;
export const TPM_BAD_MODE = 0x2c;
export const TPM_BAD_VERSION = 0x2e;
export const TPM_BAD_TYPE = 0x34;
export const TPM_BAD_LOCALITY = 0x3d;
export const TPM_RETRY = 0x800;

export const TPM_RC_INSUFFICIENT = 0x09a;
export const TPM_RC_INITIALIZE = 0x100;
export const TPM_RC_FAILURE = 0x101;
export const TPM_RC_LOCALITY = 0x107;
export const TPM_RC_COMMAND_SIZE = 0x142;
export const TPM_RC_CANCELED = 0x909;

const NAMES: Readonly<Record<number, string>> = {
  0: 'TPM_SUCCESS',
  3: 'TPM_BAD_PARAMETER',
  9: 'TPM_FAIL',
  10: 'TPM_BAD_ORDINAL',
  13: 'TPM_KEYNOTFOUND',
  23: 'TPM_SIZE',
  25: 'TPM_BAD_PARAM_SIZE',
  26: 'TPM_SHA_THREAD',
  31: 'TPM_IOERROR',
  32: 'TPM_ENCRYPT_ERROR',
  33: 'TPM_DECRYPT_ERROR',
  38: 'TPM_INVALID_POSTINIT',
  40: 'TPM_BAD_KEY_PROPERTY',
  43: 'TPM_BAD_DATASIZE',
  44: 'TPM_BAD_MODE',
  46: 'TPM_BAD_VERSION',
  52: 'TPM_BAD_TYPE',
  61: 'TPM_BAD_LOCALITY',
  2048: 'TPM_RETRY',
  154: 'TPM_RC_INSUFFICIENT',
  256: 'TPM_RC_INITIALIZE',
  257: 'TPM_RC_FAILURE',
  263: 'TPM_RC_LOCALITY',
  322: 'TPM_RC_COMMAND_SIZE',
  2313: 'TPM_RC_CANCELED',
};

/** `TPM_BAD_LOCALITY (0x3d)`; unknown codes as plain hex. */
export function resultName(rc: number): string {
  const name = NAMES[rc];
  const hex = `0x${rc.toString(16)}`;
  return name === undefined ? hex : `${name} (${hex})`;
}
