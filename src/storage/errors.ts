/** Stable reasons for a StorageError. */
export type StorageErrorCode =
  | 'READ_FAILED'
  | 'WRITE_FAILED'
  | 'DELETE_FAILED'
  | 'LOCK_FAILED'
  | 'CORRUPT_STATE'
  | 'BAD_LINEAR_FILE'
  | 'NO_SPACE'
  | 'BAD_OPTIONS'
  | 'NO_STATE_PATH';

/**
 * A state backend operation failed. `path` names the file involved; `result` is the
 * TPM result code when the cause is a state blob error (see StateBlobError).
 *
 * @example
 * catch (e) { if (e instanceof StorageError && e.code === 'CORRUPT_STATE') log(e.message) }
 */
export class StorageError extends Error {
  override readonly name = 'StorageError';
  readonly code: StorageErrorCode;
  readonly path: string | undefined;
  readonly result: number | undefined;

  constructor(
    code: StorageErrorCode,
    message: string,
    opts: { path?: string; result?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.path = opts.path;
    this.result = opts.result;
  }
}

/** `errno` code of a Node fs error (`ENOENT`, …), or undefined. */
export function errnoCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const c = (e as { code: unknown }).code;
    return typeof c === 'string' ? c : undefined;
  }
  return undefined;
}

/** One-line reason for an fs error: "EACCES: permission denied". */
export function describeFsError(e: unknown): string {
  if (e instanceof Error) {
    const code = errnoCode(e);
    const m = /^[A-Z]+: ([^,]+)/.exec(e.message);
    return code !== undefined && m?.[1] !== undefined ? `${code}: ${m[1]}` : e.message;
  }
  return String(e);
}
