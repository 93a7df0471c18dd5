/**
 * TPM 1.2-style result codes (libtpms `tpm_error.h`) that swtpm's state blob code
 * returns, e.g. in the SET_STATEBLOB response (control-channel.md §1.2).
 */
export const TPM_SUCCESS = 0x00;
export const TPM_BAD_PARAMETER = 0x03;
export const TPM_FAIL = 0x09;
export const TPM_KEYNOTFOUND = 0x0d;
export const TPM_ENCRYPT_ERROR = 0x20;
export const TPM_DECRYPT_ERROR = 0x21;
export const TPM_BAD_KEY_PROPERTY = 0x28;
export const TPM_BAD_DATASIZE = 0x2b;
export const TPM_BAD_MODE = 0x2c;
export const TPM_BAD_VERSION = 0x2e;

/** Stable machine-readable reasons for a StateBlobError. */
export type StateBlobErrorCode =
  | 'SHORT_HEADER'
  | 'TOTLEN_MISMATCH'
  | 'BAD_MIN_VERSION'
  | 'BAD_HDRSIZE'
  | 'UNSUPPORTED_VERSION'
  | 'MISSING_TAG'
  | 'UNKNOWN_TYPE'
  | 'KEY_NOT_FOUND'
  | 'WRONG_KEY_SIZE'
  | 'HMAC_MISMATCH'
  | 'BAD_IV_LENGTH'
  | 'BAD_CIPHERTEXT_LENGTH'
  | 'BAD_PADDING'
  | 'HASH_MISMATCH'
  | 'BAD_MODE'
  | 'BAD_KEY'
  | 'BAD_KDF';

/**
 * A state blob (file or GET/SET_STATEBLOB payload) could not be encoded or decoded.
 * `result` is the TPM result code swtpm 0.7.1 returns in the same situation.
 *
 * @example
 * try { decodeStateFile(bytes, key); }
 * catch (e) { if (e instanceof StateBlobError && e.code === 'HMAC_MISMATCH') ... }
 */
export class StateBlobError extends Error {
  override readonly name = 'StateBlobError';
  readonly code: StateBlobErrorCode;
  readonly result: number;

  constructor(code: StateBlobErrorCode, result: number, message: string) {
    super(message);
    this.code = code;
    this.result = result;
  }
}
