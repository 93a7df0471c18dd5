import {
  constants,
  closeSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  writeSync,
} from 'node:fs';
import type { StateName, TpmVersion } from '../engine/types.js';
import { StorageError, type StorageErrorCode, describeFsError } from './errors.js';
import { deviceSize, lockFd, setWholeFileLock } from './lock.js';
import { STATE_NAMES } from './names.js';
import type { StateBackend } from './types.js';

// Linear file layout (control-channel.md §6.2), all little-endian: u64 magic
// "swtpmlin", u8 version 1, u8 pad, u16 hdrsize 192, then 15 entries of
// {u32 offset (0 = unused), u32 data_length, u32 section_length}.
const MAGIC = 0x737774706d6c696en;
const VERSION = 1;
const HEADER_SIZE = 192;
const MAX_STATES = 15;
const ENTRIES_OFFSET = 12;
const ENTRY_SIZE = 12;

interface Entry {
  offset: number;
  dataLength: number;
  sectionLength: number;
}

export interface LinearFileOptions {
  /** `lock` (default false for file://): fcntl write lock on the file itself. */
  readonly lock?: boolean | undefined;
  /** Mode for a newly created file (default 0640). */
  readonly mode?: number | undefined;
}

/** Smallest power of two ≥ n (swtpm's section size). */
export function sectionSize(n: number): number {
  let s = 1;
  while (s < n) s *= 2;
  return s;
}

/**
 * swtpm's linear file backend (`backend-uri=file://PATH`): all blobs in one regular
 * file or block device behind a 192-byte header. Sections are appended at the end,
 * sized to a power of two; deleting one moves later sections forward and shrinks a
 * regular file. One fd is kept for all I/O; the `lock` (an OFD lock, see lock.ts)
 * belongs to it.
 *
 * @example
 * const b = new LinearFileBackend('/var/lib/tpm/state.img');
 * b.write('2.0', 'permall', encodeStateFile(permall));
 */
export class LinearFileBackend implements StateBackend {
  readonly uri: string;
  readonly path: string;
  readonly #opts: LinearFileOptions;
  #fd: number | undefined;
  #isBlock = false;
  #size = 0;
  #header = new Uint8Array(HEADER_SIZE);
  #locked = false;

  constructor(path: string, opts: LinearFileOptions = {}) {
    this.path = path;
    this.uri = `file://${path}`;
    this.#opts = opts;
  }

  read(_version: TpmVersion, name: StateName): Uint8Array | undefined {
    const fd = this.#open();
    const e = this.#entry(name);
    if (e.offset === 0) return undefined;
    if (e.offset + e.dataLength > this.#size || e.dataLength > e.sectionLength) {
      throw new StorageError(
        'BAD_LINEAR_FILE',
        `${this.path}: ${name} at offset ${e.offset} (${e.dataLength} bytes) lies outside the file`,
        { path: this.path },
      );
    }
    const out = new Uint8Array(e.dataLength);
    this.#io(() => readFully(fd, out, e.offset), 'read', 'READ_FAILED');
    return out;
  }

  write(_version: TpmVersion, name: StateName, data: Uint8Array): void {
    const fd = this.#open();
    let e = this.#entry(name);
    if (e.offset === 0 || e.sectionLength < data.length) {
      if (e.offset !== 0) this.#remove(name);
      let end = HEADER_SIZE;
      for (const other of this.#entries()) end = Math.max(end, other.offset + other.sectionLength);
      e = { offset: end, dataLength: 0, sectionLength: sectionSize(data.length) };
      this.#ensureSize(end + e.sectionLength);
    }
    e.dataLength = data.length;
    this.#io(() => writeFully(fd, data, e.offset), 'write');
    this.#setEntry(name, e);
    this.#flushHeader();
  }

  delete(_version: TpmVersion, name: StateName): boolean {
    this.#open();
    if (this.#entry(name).offset === 0) return false;
    this.#remove(name);
    this.#flushHeader();
    return true;
  }

  lock(retries: number): boolean {
    if (this.#opts.lock !== true || this.#locked) return true;
    this.#locked = lockFd(this.#open(), retries, this.path);
    return this.#locked;
  }

  unlock(): void {
    if (this.#locked && this.#fd !== undefined) setWholeFileLock(this.#fd, false, this.path);
    this.#locked = false;
  }

  get locked(): boolean {
    return this.#opts.lock !== true || this.#locked;
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    this.#locked = false;
  }

  #open(): number {
    if (this.#fd !== undefined) return this.#fd;
    let fd: number;
    try {
      fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT, this.#opts.mode ?? 0o640);
    } catch (e) {
      throw new StorageError('READ_FAILED', `could not open ${this.path}: ${describeFsError(e)}`, {
        path: this.path,
        cause: e,
      });
    }
    this.#fd = fd;
    try {
      const st = fstatSync(fd);
      this.#isBlock = st.isBlockDevice();
      this.#size = this.#isBlock ? deviceSize(fd) : st.size;
      const n = this.#size >= HEADER_SIZE ? readFully(fd, this.#header, 0) : 0;
      const dv = this.#view();
      if (n < HEADER_SIZE || dv.getBigUint64(0, true) !== MAGIC) this.#format();
      else if (dv.getUint8(8) !== VERSION || dv.getUint16(10, true) !== HEADER_SIZE) {
        throw new StorageError(
          'BAD_LINEAR_FILE',
          `${this.path}: unsupported linear file version ${dv.getUint8(8)}`,
          { path: this.path },
        );
      }
    } catch (e) {
      this.close();
      if (e instanceof StorageError) throw e;
      throw new StorageError('READ_FAILED', `could not read ${this.path}: ${describeFsError(e)}`, {
        path: this.path,
        cause: e,
      });
    }
    return fd;
  }

  #format(): void {
    this.#header.fill(0);
    const dv = this.#view();
    dv.setBigUint64(0, MAGIC, true);
    dv.setUint8(8, VERSION);
    dv.setUint16(10, HEADER_SIZE, true);
    this.#ensureSize(HEADER_SIZE);
    this.#flushHeader();
  }

  #view(): DataView {
    return new DataView(this.#header.buffer);
  }

  #index(name: StateName): number {
    return ENTRIES_OFFSET + STATE_NAMES.indexOf(name) * ENTRY_SIZE;
  }

  #entry(name: StateName): Entry {
    const o = this.#index(name);
    const dv = this.#view();
    return {
      offset: dv.getUint32(o, true),
      dataLength: dv.getUint32(o + 4, true),
      sectionLength: dv.getUint32(o + 8, true),
    };
  }

  #entries(): Entry[] {
    const dv = this.#view();
    const out: Entry[] = [];
    for (let i = 0; i < MAX_STATES; i++) {
      const o = ENTRIES_OFFSET + i * ENTRY_SIZE;
      const offset = dv.getUint32(o, true);
      if (offset !== 0)
        out.push({ offset, dataLength: 0, sectionLength: dv.getUint32(o + 8, true) });
    }
    return out;
  }

  #setEntry(name: StateName, e: Entry): void {
    const o = this.#index(name);
    const dv = this.#view();
    dv.setUint32(o, e.offset, true);
    dv.setUint32(o + 4, e.dataLength, true);
    dv.setUint32(o + 8, e.sectionLength, true);
  }

  /** Frees a section: later sections move forward by its length; the file shrinks. */
  #remove(name: StateName): void {
    const fd = this.#fd as number;
    const gone = this.#entry(name);
    this.#setEntry(name, { offset: 0, dataLength: 0, sectionLength: 0 });
    const dv = this.#view();
    const later: number[] = [];
    for (let i = 0; i < MAX_STATES; i++) {
      const o = ENTRIES_OFFSET + i * ENTRY_SIZE;
      if (dv.getUint32(o, true) > gone.offset) later.push(o);
    }
    later.sort((a, b) => dv.getUint32(a, true) - dv.getUint32(b, true));
    let end = HEADER_SIZE;
    for (const o of later) {
      const from = dv.getUint32(o, true);
      const len = dv.getUint32(o + 8, true);
      const buf = new Uint8Array(len);
      this.#io(() => {
        readFully(fd, buf, from);
        writeFully(fd, buf, from - gone.sectionLength);
      }, 'compact');
      dv.setUint32(o, from - gone.sectionLength, true);
    }
    for (const e of this.#entries()) end = Math.max(end, e.offset + e.sectionLength);
    if (!this.#isBlock && end < this.#size) {
      this.#io(() => ftruncateSync(fd, end), 'shrink');
      this.#size = end;
    }
  }

  #ensureSize(size: number): void {
    if (size <= this.#size) return;
    if (this.#isBlock) {
      throw new StorageError(
        'NO_SPACE',
        `${this.path}: block device of ${this.#size} bytes is too small, ${size} needed`,
        { path: this.path },
      );
    }
    this.#io(() => ftruncateSync(this.#fd as number, size), 'grow');
    this.#size = size;
  }

  #flushHeader(): void {
    this.#io(() => writeFully(this.#fd as number, this.#header, 0), 'write header of');
  }

  #io(fn: () => unknown, what: string, code: StorageErrorCode = 'WRITE_FAILED'): void {
    try {
      fn();
    } catch (e) {
      throw new StorageError(code, `could not ${what} ${this.path}: ${describeFsError(e)}`, {
        path: this.path,
        cause: e,
      });
    }
  }
}

function readFully(fd: number, buf: Uint8Array, position: number): number {
  let n = 0;
  while (n < buf.length) {
    const r = readSync(fd, buf, n, buf.length - n, position + n);
    if (r === 0) break;
    n += r;
  }
  return n;
}

function writeFully(fd: number, buf: Uint8Array, position: number): void {
  let n = 0;
  while (n < buf.length) n += writeSync(fd, buf, n, buf.length - n, position + n);
}
