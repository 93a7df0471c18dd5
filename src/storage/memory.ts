import type { StateName, TpmVersion } from '../engine/types.js';
import { stateFileName } from './names.js';
import type { StateBackend } from './types.js';

/** What MemoryBackends sharing one "disk" have in common: files and the lock holder. */
export interface MemoryDisk {
  readonly files: Map<string, Uint8Array>;
  holder: MemoryBackend | undefined;
}

/**
 * In-memory backend for tests. Backends created on the same `disk` see the same files
 * and contend for one lock, like two processes on one directory.
 *
 * @example
 * const disk = MemoryBackend.disk();
 * const a = new MemoryBackend(disk), b = new MemoryBackend(disk);
 * a.lock(0); b.lock(0) // false
 */
export class MemoryBackend implements StateBackend {
  readonly uri = 'memory://';
  readonly disk: MemoryDisk;

  constructor(disk: MemoryDisk = MemoryBackend.disk()) {
    this.disk = disk;
  }

  static disk(): MemoryDisk {
    return { files: new Map(), holder: undefined };
  }

  read(version: TpmVersion, name: StateName): Uint8Array | undefined {
    const data = this.disk.files.get(stateFileName(version, name));
    return data === undefined ? undefined : Uint8Array.from(data);
  }

  write(version: TpmVersion, name: StateName, data: Uint8Array): void {
    this.disk.files.set(stateFileName(version, name), Uint8Array.from(data));
  }

  delete(version: TpmVersion, name: StateName): boolean {
    return this.disk.files.delete(stateFileName(version, name));
  }

  lock(_retries: number): boolean {
    if (this.disk.holder !== undefined && this.disk.holder !== this) return false;
    this.disk.holder = this;
    return true;
  }

  unlock(): void {
    if (this.disk.holder === this) this.disk.holder = undefined;
  }

  get locked(): boolean {
    return this.disk.holder === this;
  }

  close(): void {
    this.unlock();
  }
}
