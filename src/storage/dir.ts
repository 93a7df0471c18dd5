import {
  constants,
  closeSync,
  fchmodSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { StateName, TpmVersion } from '../engine/types.js';
import { StorageError, type StorageErrorCode, describeFsError, errnoCode } from './errors.js';
import { LockFile } from './lock.js';
import { stateFileName, tempFileName } from './names.js';
import type { StateBackend } from './types.js';

/** swtpm's default mode for state files (umask applies). */
export const DEFAULT_STATE_FILE_MODE = 0o640;

export interface DirBackendOptions {
  /** `mode=`: file mode for state files; a non-default mode is applied regardless of umask. */
  readonly mode?: number | undefined;
  /** `lock=` (default true): fcntl lock on `<dir>/.lock`. */
  readonly lock?: boolean | undefined;
  /** `fsync` (swtpm master): fsync each written file and the directory. */
  readonly fsync?: boolean | undefined;
  /** `backup` (swtpm master): keep the previous permall as `<permall>.bak`. */
  readonly backup?: boolean | undefined;
}

const WRITE_FLAGS =
  constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;

/**
 * swtpm's directory backend (`dir=D`, `backend-uri=dir://D`): one file per blob
 * (`tpm2-00.permall`, …), each write to `TMP2-00.<name>` then rename(). The directory
 * is never created.
 *
 * @example
 * const b = new DirBackend('/var/lib/tpm');
 * if (!b.lock(0)) throw new Error('in use');
 * b.write('2.0', 'permall', encodeStateFile(permall));
 */
export class DirBackend implements StateBackend {
  readonly uri: string;
  readonly dir: string;
  readonly #opts: DirBackendOptions;
  readonly #lock: LockFile;

  constructor(dir: string, opts: DirBackendOptions = {}) {
    this.dir = dir;
    this.uri = `dir://${dir}`;
    this.#opts = opts;
    this.#lock = new LockFile(join(dir, '.lock'));
  }

  /** `backup` was asked for: a failed start may fall back to `<permall>.bak`. */
  get backupEnabled(): boolean {
    return this.#opts.backup === true;
  }

  /** Absolute-or-relative path of a state file in this directory. */
  path(version: TpmVersion, name: StateName): string {
    return join(this.dir, stateFileName(version, name));
  }

  read(version: TpmVersion, name: StateName): Uint8Array | undefined {
    return readOptional(this.path(version, name));
  }

  write(version: TpmVersion, name: StateName, data: Uint8Array): void {
    const file = this.path(version, name);
    const tmp = join(this.dir, tempFileName(version, name));
    this.#writeFile(tmp, data, file);
    try {
      if (this.#opts.backup === true && name === 'permall') {
        renameIfExists(file, `${file}.bak`);
      }
      renameSync(tmp, file);
    } catch (e) {
      tryUnlink(tmp);
      throw fsError('WRITE_FAILED', `could not rename ${tmp} to ${file}`, file, e);
    }
    if (this.#opts.fsync === true) this.#fsyncDir();
  }

  delete(version: TpmVersion, name: StateName): boolean {
    const file = this.path(version, name);
    try {
      unlinkSync(file);
      return true;
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return false;
      throw fsError('DELETE_FAILED', `could not delete ${file}`, file, e);
    }
  }

  /**
   * With `backup`: puts `<permall>.bak` back as the permall (through `<permall>.tmp`),
   * for when the current permall is missing or libtpms rejected it. The .bak is kept,
   * and so is the rejected permall, as `<permall>.bad`: state is never thrown away.
   * Returns false when there is no backup.
   */
  restoreBackup(version: TpmVersion): boolean {
    const file = this.path(version, 'permall');
    const bak = readOptional(`${file}.bak`);
    if (bak === undefined) return false;
    const tmp = `${file}.tmp`;
    this.#writeFile(tmp, bak, file);
    try {
      renameIfExists(file, `${file}.bad`);
      renameSync(tmp, file);
    } catch (e) {
      tryUnlink(tmp);
      throw fsError('WRITE_FAILED', `could not restore ${file} from its backup`, file, e);
    }
    if (this.#opts.fsync === true) this.#fsyncDir();
    return true;
  }

  /** With `lock=false` this always succeeds without touching `.lock`. */
  lock(retries: number): boolean {
    if (this.#opts.lock === false) return true;
    return this.#lock.lock(retries);
  }

  unlock(): void {
    this.#lock.unlock();
  }

  get locked(): boolean {
    return this.#opts.lock === false || this.#lock.locked;
  }

  close(): void {
    this.#lock.unlock();
  }

  #writeFile(tmp: string, data: Uint8Array, file: string): void {
    const mode = this.#opts.mode;
    let fd: number | undefined;
    try {
      fd = openSync(tmp, WRITE_FLAGS, mode ?? DEFAULT_STATE_FILE_MODE);
      if (mode !== undefined && mode !== DEFAULT_STATE_FILE_MODE) fchmodSync(fd, mode);
      writeFileSync(fd, data);
      if (this.#opts.fsync === true) fsyncSync(fd);
    } catch (e) {
      if (fd !== undefined) tryUnlink(tmp);
      throw fsError('WRITE_FAILED', `could not write ${tmp} (for ${file})`, file, e);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  #fsyncDir(): void {
    let fd: number | undefined;
    try {
      fd = openSync(this.dir, constants.O_RDONLY | constants.O_DIRECTORY);
      fsyncSync(fd);
    } catch (e) {
      throw fsError('WRITE_FAILED', `could not fsync directory ${this.dir}`, this.dir, e);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}

function readOptional(file: string): Uint8Array | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    return new Uint8Array(readFileSync(fd));
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw fsError('READ_FAILED', `could not read ${file}`, file, e);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
}

function tryUnlink(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // best effort: the temp file is overwritten by the next write anyway
  }
}

function fsError(code: StorageErrorCode, what: string, path: string, e: unknown): StorageError {
  return new StorageError(code, `${what}: ${describeFsError(e)}`, { path, cause: e });
}
