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

/**
 * The result swtpm 0.7.1's NV load callback (SWTPM_NVRAM_LoadData) hands libtpms when
 * a state file cannot be decoded. Only two verdicts of its decryption step pass
 * through: an HMAC that does not verify (TPM_DECRYPT_ERROR: the state exists but the
 * key is wrong) and a key of the other AES size (TPM_BAD_KEY_PROPERTY). Everything
 * else is TPM_FAIL there: a missing TLV, a failed decryption, and a header that fails
 * its checks (0.7.1 then reads the file as a headerless legacy blob, which fails).
 * libtpms' TPM 1.2 MainInit answers this result; TPM 2 enters failure mode (0x101).
 *
 * @example
 * loadDataResult(new StateBlobError('KEY_NOT_FOUND', TPM_KEYNOTFOUND, '...')); // TPM_FAIL
 */
export function loadDataResult(e: StateBlobError): number {
  if (e.code === 'HMAC_MISMATCH' || e.code === 'WRONG_KEY_SIZE') return e.result;
  return TPM_FAIL;
}
