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
   * `backup` (swtpm master, dir backend): puts the previous permall back after libtpms
   * rejected the current one. Returns false when there is no backup.
   */
  restoreBackup?(version: TpmVersion): boolean;
  readonly backupEnabled?: boolean;
}
