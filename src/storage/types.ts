import type { StateName, TpmVersion } from '../engine/types.js';

/**
 * A place that holds swtpm state files byte-for-byte (blob header + TLVs, possibly
 * encrypted). Backends know nothing of the blob format. Every method is synchronous
 * because libtpms' NV callbacks are.
 *
 * Errors are thrown as `StorageError` (see errors.ts) with a stable `code`.
 */
export interface StateBackend {
  /** Human readable location, for messages ("dir:///var/lib/tpm"). */
  readonly uri: string;
  /** File contents, or undefined when the named blob does not exist. */
  read(version: TpmVersion, name: StateName): Uint8Array | undefined;
  /** Atomic replace: after a crash either the old or the new content is there. */
  write(version: TpmVersion, name: StateName, data: Uint8Array): void;
  /** Returns false when nothing was there. */
  delete(version: TpmVersion, name: StateName): boolean;
  /** Take the storage lock (fcntl F_SETLK on `.lock`); false when someone else holds it. */
  lock(retries: number): boolean;
  unlock(): void;
  readonly locked: boolean;
  close(): void;
  /**
   * `backup` (swtpm master, dir backend): until endFromBackup(), the permall is read
   * from the backup instead (nothing on disk changes). False when there is no backup.
   */
  beginFromBackup?(version: TpmVersion): boolean;
  /**
   * `ok`: the backup becomes the permall (the one it replaces is kept, never deleted).
   * Not ok: the files stay exactly as they were.
   */
  endFromBackup?(ok: boolean): void;
  readonly backupEnabled?: boolean;
}
