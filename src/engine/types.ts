/** TPM family emulated by libtpms. swtpm defaults to 1.2 unless `--tpm2` is given. */
export type TpmVersion = '1.2' | '2.0';

/** The three blobs libtpms asks its NV callbacks for (swtpm's file suffixes). */
export type StateName = 'permall' | 'volatilestate' | 'savestate';

/**
 * Where libtpms' NV callbacks read and write. Called synchronously from inside
 * TPMLIB_MainInit / TPMLIB_Process, so every method is synchronous.
 *
 * `load` returns undefined when the blob does not exist (libtpms then sees TPM_RETRY)
 * and throws when it exists but cannot be read or decoded (libtpms sees TPM_FAIL and
 * the error is kept for the caller of the failing engine call).
 */
export interface NvStore {
  load(name: StateName): Uint8Array | undefined;
  store(name: StateName, data: Uint8Array): void;
  /** Returns false when the blob did not exist. */
  delete(name: StateName): boolean;
}

/** Result of TPMLIB_SetBufferSize: the size in effect and the allowed range. */
export interface BufferSizeInfo {
  readonly rc: number;
  readonly size: number;
  readonly min: number;
  readonly max: number;
}
