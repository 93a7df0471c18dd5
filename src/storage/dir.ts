import { renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { StateName, TpmVersion } from '../engine/types.js';
import type { WriteStepHook } from './crash-hook.js';
import {
  FdReserve,
  type TempWrite,
  attempt,
  fsyncDir,
  ioError,
  linkOrCopy,
  readOptional,
  tryUnlink,
  writeTemp,
} from './dir-io.js';
import { errnoCode } from './errors.js';
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
  /** Test-only crash injection (crash-hook.ts); undefined in normal operation. */
  readonly onWriteStep?: WriteStepHook | undefined;
}

/**
 * swtpm's directory backend (`dir=D`, `backend-uri=dir://D`): one file per blob
 * (`tpm2-00.permall`, …), each write to a new `TMP2-00.<name>` then rename(). With
 * `backup`, the permall being replaced first gets a second name `<permall>.bak`
 * (link + rename), so a valid permall exists at every instant. The directory is never
 * created.
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
  readonly #reserve = new FdReserve();
  /** While a start runs from the backup: its bytes, served as the permall. */
  #fromBackup: { version: TpmVersion; bytes: Uint8Array } | undefined;

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
    const b = this.#fromBackup;
    if (b !== undefined && b.version === version && name === 'permall') return b.bytes.slice();
    return readOptional(this.path(version, name), this.#reserve);
  }

  write(version: TpmVersion, name: StateName, data: Uint8Array): void {
    // libtpms writes the permall while it starts from the backup: make the backup
    // the permall first, so the rejected file is kept and never becomes the .bak.
    if (name === 'permall' && this.#fromBackup?.version === version) this.#adoptBackup();
    const file = this.path(version, name);
    const tmp = join(this.dir, tempFileName(version, name));
    const w = this.#temp(`could not store ${stateFileName(version, name)} in ${this.uri}`, name);
    writeTemp(tmp, data, w);
    try {
      if (this.#opts.backup === true && name === 'permall') this.#keepAs(file, `${file}.bak`, w);
      attempt('WRITE_FAILED', w.what, 'rename', tmp, () => renameSync(tmp, file));
    } catch (e) {
      tryUnlink(tmp);
      throw e;
    }
    w.step('renamed');
    if (this.#opts.fsync === true) {
      fsyncDir(this.dir, this.#reserve, w.what);
      w.step('dir-synced');
    }
  }

  delete(version: TpmVersion, name: StateName): boolean {
    const file = this.path(version, name);
    try {
      unlinkSync(file);
      return true;
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return false;
      const what = `could not delete ${stateFileName(version, name)} in ${this.uri}`;
      throw ioError('DELETE_FAILED', what, 'unlink', file, e);
    }
  }

  /**
   * With `backup`: until endFromBackup(), the permall is read from `<permall>.bak`
   * (nothing on disk changes). Returns false when there is no backup.
   */
  beginFromBackup(version: TpmVersion): boolean {
    const bytes = readOptional(`${this.path(version, 'permall')}.bak`, this.#reserve);
    if (bytes === undefined) return false;
    this.#fromBackup = { version, bytes };
    return true;
  }

  /**
   * Ends a start from the backup. `ok`: the backup becomes the permall, the permall it
   * replaces (libtpms rejected it) is kept as `<permall>.bad`. Not ok: the files stay
   * exactly as they were, unless libtpms wrote the permall during the failed start:
   * then the backup was adopted before that write, and nothing is lost.
   */
  endFromBackup(ok: boolean): void {
    if (this.#fromBackup === undefined) return;
    if (ok) this.#adoptBackup();
    this.#fromBackup = undefined;
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
    this.#reserve.release();
  }

  /** Writes the backup's bytes as the permall, keeping the one it replaces as `.bad`. */
  #adoptBackup(): void {
    const b = this.#fromBackup;
    if (b === undefined) return;
    this.#fromBackup = undefined;
    const file = this.path(b.version, 'permall');
    const tmp = `${file}.tmp`;
    const w = this.#temp(
      `could not restore ${stateFileName(b.version, 'permall')} in ${this.uri} from its backup`,
    );
    writeTemp(tmp, b.bytes, w);
    try {
      this.#keepAs(file, `${file}.bad`, w);
      attempt('WRITE_FAILED', w.what, 'rename', tmp, () => renameSync(tmp, file));
    } catch (e) {
      tryUnlink(tmp);
      throw e;
    }
    if (this.#opts.fsync === true) fsyncDir(this.dir, this.#reserve, w.what);
  }

  /**
   * Gives `file`'s current content the name `keep` (through a temp name and rename, so
   * `keep` is never half-written); nothing when `file` does not exist.
   */
  #keepAs(file: string, keep: string, w: TempWrite): void {
    const tmp = `${keep}.tmp`;
    if (!linkOrCopy(file, tmp, w)) return;
    w.step('backup-linked');
    attempt('WRITE_FAILED', w.what, 'rename', tmp, () => renameSync(tmp, keep));
    w.step('backup-renamed');
  }

  #temp(what: string, name?: StateName): TempWrite {
    const hook = this.#opts.onWriteStep;
    let n = 0;
    return {
      reserve: this.#reserve,
      mode: this.#opts.mode,
      defaultMode: DEFAULT_STATE_FILE_MODE,
      fsync: this.#opts.fsync === true,
      what,
      step: hook === undefined || name === undefined ? noStep : (label) => hook(name, ++n, label),
    };
  }
}

const noStep = (): void => {};
