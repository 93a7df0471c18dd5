/**
 * The state location of swtpm_setup (provisioning.md §1.6): `dir://` or `file://` (a
 * bare path is `dir://`), its access checks, and how a run keeps what was there before.
 * swtpm_setup deletes the old state before it starts and deletes the state again after
 * any failure. We set existing state files aside instead (renamed, or copied for
 * --reconfigure) and put them back if the run fails, so a failure never loses a TPM;
 * a state that did not exist before is removed after a failure, as swtpm_setup does.
 */
import {
  constants,
  accessSync,
  copyFileSync,
  existsSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../common/subopts.js';

export interface StateLocation {
  /** What the emulator gets as `backend-uri=`. */
  readonly uri: string;
  readonly kind: 'dir' | 'file';
  readonly path: string;
}

export function parseStateLocation(v: string): StateLocation {
  if (v.startsWith('file://')) return { uri: v, kind: 'file', path: v.slice(7) };
  const uri = v.startsWith('dir://') ? v : `dir://${v}`;
  return { uri, kind: 'dir', path: uri.slice(6) };
}

const can = (p: string, mode: number): boolean => {
  try {
    accessSync(p, mode);
    return true;
  } catch {
    return false;
  }
};

/** swtpm_setup's access checks; a CliError carries its message (or none for file://). */
export function checkStateAccess(loc: StateLocation, user: string): void {
  if (loc.kind === 'file') {
    try {
      statSync(loc.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT')
        throw new CliError(`Couldn't stat file ${loc.path}: ${(err as Error).message}`);
      return;
    }
    // swtpm_setup exits 1 here without a message.
    if (!can(loc.path, constants.R_OK | constants.W_OK)) throw new CliError('');
    return;
  }
  checkDirectory(loc.path, user);
  const lock = join(loc.path, '.lock');
  if (existsSync(lock) && !can(lock, constants.R_OK | constants.W_OK)) {
    throw new CliError(`User ${user} cannot read/write lockfile ${lock}.`);
  }
}

/** A directory the user can read and write (also --write-ek-cert-files). */
export function checkDirectory(dir: string, user: string): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {}
  if (!isDir) {
    throw new CliError(
      `User ${user} cannot access directory ${dir}. Make sure it exists and is a directory.`,
    );
  }
  if (!can(dir, constants.R_OK))
    throw new CliError(`Need read rights on directory ${dir} for user ${user}.`);
  if (!can(dir, constants.W_OK))
    throw new CliError(`Need write rights on directory ${dir} for user ${user}.`);
}

/** State file names swtpm_setup deletes: any name ending in one of these. */
const STATE_SUFFIXES = ['permall', 'volatilestate', 'savestate'];
const SAVED = '.tswtpm_setup-saved';

function stateFiles(loc: StateLocation): string[] {
  if (loc.kind === 'file')
    return existsSync(loc.path) && statSync(loc.path).isFile() ? [loc.path] : [];
  return readdirSync(loc.path)
    .filter((n) => STATE_SUFFIXES.some((s) => n.endsWith(s)))
    .map((n) => join(loc.path, n));
}

/**
 * Puts back state files that an interrupted earlier run set aside (killed between
 * `setAside()` and `commit()`/`restore()`), over whatever that run left half made, so the
 * next run (libvirt's `--not-overwrite` on every first start) finds the old TPM instead of
 * manufacturing a new one. Returns the files restored.
 */
export function recoverSetAside(loc: StateLocation): string[] {
  const saved =
    loc.kind === 'file'
      ? existsSync(loc.path + SAVED)
        ? [loc.path + SAVED]
        : []
      : readdirSync(loc.path)
          .filter((n) => n.endsWith(SAVED))
          .map((n) => join(loc.path, n));
  for (const f of saved) renameSync(f, f.slice(0, -SAVED.length));
  return saved.map((f) => f.slice(0, -SAVED.length));
}

/**
 * What was at the state location before this run. `clear` (overwrite) moves it aside,
 * `keep` (reconfigure) copies it aside; `restore()` after a failure removes what the run
 * wrote and puts the old files back; `commit()` after success drops the saved copies.
 */
export class StateGuard {
  private readonly saved: string[] = [];
  private readonly loc: StateLocation;
  private readonly fileExisted: boolean;

  private constructor(loc: StateLocation) {
    this.loc = loc;
    this.fileExisted = loc.kind === 'file' && existsSync(loc.path);
  }

  /** Before the emulator's probe: remembers whether a linear file existed at all. */
  static before(loc: StateLocation): StateGuard {
    return new StateGuard(loc);
  }

  /** Sets the existing state files aside: moved (`clear`) or copied (`keep`). */
  setAside(how: 'clear' | 'keep'): void {
    if (this.loc.kind === 'file' && !this.fileExisted) return;
    if (this.loc.kind === 'file' && !statSync(this.loc.path).isFile()) return;
    for (const f of stateFiles(this.loc)) {
      if (how === 'clear') renameSync(f, f + SAVED);
      else copyFileSync(f, f + SAVED);
      this.saved.push(f);
    }
  }

  restore(): void {
    if (this.loc.kind === 'dir') for (const f of stateFiles(this.loc)) unlinkSync(f);
    for (const f of this.saved) renameSync(f + SAVED, f);
    if (this.loc.kind === 'file' && !this.fileExisted && existsSync(this.loc.path)) {
      unlinkSync(this.loc.path);
    }
  }

  commit(): void {
    for (const f of this.saved) {
      try {
        unlinkSync(f + SAVED);
      } catch {}
    }
  }
}
