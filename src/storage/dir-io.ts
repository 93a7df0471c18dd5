import {
  constants,
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { StorageError, type StorageErrorCode, describeFsError, errnoCode } from './errors.js';

/**
 * A temp file is always created anew: a file or symlink someone placed at its name is
 * never written through (O_EXCL fails on both; O_NOFOLLOW is belt and braces).
 */
const CREATE_FLAGS =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * One fd kept open on /dev/null so that running out of fds (EMFILE, ENFILE) never
 * becomes a lost state write: an open that fails for lack of fds frees it and tries
 * again once; closing that file takes the reserve back.
 *
 * @example
 * const fd = reserve.open(path, constants.O_RDONLY);
 * try { ... } finally { reserve.close(fd); }
 */
export class FdReserve {
  #fd: number | undefined;

  /** Opens the reserve if it is not held (best effort: a full table is retried later). */
  take(): void {
    if (this.#fd !== undefined) return;
    try {
      this.#fd = openSync('/dev/null', constants.O_RDONLY);
    } catch {
      // no fd to spare right now; the next close() tries again
    }
  }

  /** openSync(), retried once with the reserve given up when the fd table is full. */
  open(path: string, flags: number, mode?: number): number {
    this.take();
    try {
      return openSync(path, flags, mode);
    } catch (e) {
      const code = errnoCode(e);
      if ((code !== 'EMFILE' && code !== 'ENFILE') || this.#fd === undefined) throw e;
      closeSync(this.#fd);
      this.#fd = undefined;
      return openSync(path, flags, mode);
    }
  }

  /** Closes a file opened with open() and takes the reserve back. */
  close(fd: number): void {
    try {
      closeSync(fd);
    } finally {
      this.take();
    }
  }

  release(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/** Which syscall failed on which path: `write(/d/TMP2-00.permall)`. */
export function ioError(
  code: StorageErrorCode,
  what: string,
  op: string,
  path: string,
  e: unknown,
): StorageError {
  if (e instanceof StorageError) return e;
  return new StorageError(code, `${what}: ${op}(${path}) failed: ${describeFsError(e)}`, {
    path,
    cause: e,
  });
}

/** Runs `fn`, naming `op` and `path` in the StorageError it throws. */
export function attempt<T>(
  code: StorageErrorCode,
  what: string,
  op: string,
  path: string,
  fn: () => T,
): T {
  try {
    return fn();
  } catch (e) {
    throw ioError(code, what, op, path, e);
  }
}

/** Removes `file` if it is there (a symlink is removed, never followed). */
export function unlinkIfExists(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
}

export function tryUnlink(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // best effort: a leftover temp file is removed before the next write uses its name
  }
}

export interface TempWrite {
  readonly reserve: FdReserve;
  /** `mode=`; a non-default mode is applied with fchmod (umask cleared, as swtpm). */
  readonly mode: number | undefined;
  readonly defaultMode: number;
  readonly fsync: boolean;
  /** Error message head, e.g. "could not store tpm2-00.permall in dir:///d". */
  readonly what: string;
  /** Called after each completed step (test crash hook); see crash-hook.ts. */
  readonly step: (label: string) => void;
}

/**
 * Writes `data` to a freshly created `tmp` (a stale one left by a crash is removed
 * first), fsynced when asked. On failure the temp file is removed.
 */
export function writeTemp(tmp: string, data: Uint8Array, w: TempWrite): void {
  const create = () => w.reserve.open(tmp, CREATE_FLAGS, w.mode ?? w.defaultMode);
  // Whatever is already at the temp name (left by a crash, or planted: a symlink, a
  // hard link) makes the O_EXCL open fail; it is unlinked and the open tried again.
  // (Unlinking first on every write cost each one a failed unlink() and its exception.)
  let fd = attempt('WRITE_FAILED', w.what, 'open', tmp, () => {
    try {
      return create();
    } catch (e) {
      if (errnoCode(e) === 'EEXIST') return undefined;
      throw e;
    }
  });
  if (fd === undefined) {
    attempt('WRITE_FAILED', w.what, 'unlink', tmp, () => unlinkIfExists(tmp));
    fd = attempt('WRITE_FAILED', w.what, 'open', tmp, create);
  }
  try {
    w.step('temp-created');
    if (w.mode !== undefined && w.mode !== w.defaultMode) {
      attempt('WRITE_FAILED', w.what, 'fchmod', tmp, () => fchmodSync(fd, w.mode as number));
    }
    attempt('WRITE_FAILED', w.what, 'write', tmp, () => writeFileSync(fd, data));
    w.step('temp-written');
    if (w.fsync) {
      attempt('WRITE_FAILED', w.what, 'fsync', tmp, () => fsyncSync(fd));
      w.step('temp-synced');
    }
  } catch (e) {
    try {
      w.reserve.close(fd);
    } catch {
      // the write already failed; that error is the one to report
    }
    tryUnlink(tmp);
    throw e;
  }
  try {
    w.reserve.close(fd);
  } catch (e) {
    // close() can report a delayed write error (NFS, quota): the data may be lost.
    tryUnlink(tmp);
    throw ioError('WRITE_FAILED', w.what, 'close', tmp, e);
  }
  w.step('temp-closed');
}

/**
 * A second name for `file` at `tmp` without copying when the file system allows
 * (link(2)); otherwise a copy. Returns false when `file` does not exist.
 */
export function linkOrCopy(file: string, tmp: string, w: TempWrite): boolean {
  attempt('WRITE_FAILED', w.what, 'unlink', tmp, () => unlinkIfExists(tmp));
  try {
    linkSync(file, tmp);
    return true;
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') {
      throw ioError('WRITE_FAILED', w.what, 'link', tmp, e);
    }
  }
  const bytes = readOptional(file, w.reserve);
  if (bytes === undefined) return false;
  writeTemp(tmp, bytes, w);
  return true;
}

/** A file's bytes, or undefined when it does not exist. Symlinks are not followed. */
export function readOptional(file: string, reserve: FdReserve): Uint8Array | undefined {
  let fd: number | undefined;
  try {
    fd = reserve.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    return new Uint8Array(readFileSync(fd));
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw ioError(
      'READ_FAILED',
      `could not read ${file}`,
      fd === undefined ? 'open' : 'read',
      file,
      e,
    );
  } finally {
    if (fd !== undefined) reserve.close(fd);
  }
}

/** fsync(2) of a directory, so renames in it survive a power loss. */
export function fsyncDir(dir: string, reserve: FdReserve, what: string): void {
  const fd = attempt('WRITE_FAILED', what, 'open', dir, () =>
    reserve.open(dir, constants.O_RDONLY | constants.O_DIRECTORY),
  );
  try {
    attempt('WRITE_FAILED', what, 'fsync', dir, () => fsyncSync(fd));
  } finally {
    reserve.close(fd);
  }
}
