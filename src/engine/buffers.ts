/**
 * The native memory an engine shares with libtpms, and the copies out of it
 * (libtpms-engine.md §2.1, pitfalls 3–5 and 12):
 * - TPMLIB_Process' out-parameters: `u8 *resp` at 0, `u32 resp_size` at 8,
 *   `u32 resp_bufsize` at 12 of one malloc()ed slot. libtpms realloc()s the response
 *   buffer at will, so its address is read again after every call;
 * - the out-parameters of GetState / VolatileAll_Store / DecodeBlob: pointer at 0,
 *   length at 8 (a size_t for DecodeBlob); the result is malloc()ed and ours to free;
 * - the command of an async Process, at a stable address while the worker reads it.
 */
import { HOST_LITTLE_ENDIAN } from '../protocol/host-endian.js';
import { fatalErrorResponse } from './commands.js';
import { EngineError, type StateResult } from './errors.js';
import type { Libtpms, Ptr } from './libtpms.js';
import type { TpmVersion } from './types.js';

const LE = HOST_LITTLE_ENDIAN;
const EMPTY = new Uint8Array(0);

export class NativeBuffers {
  /** Process' out-parameter slot (resp, resp_size, resp_bufsize). */
  readonly rsp: Ptr;
  readonly #lib: Libtpms;
  readonly #rspView: DataView;
  readonly #out: Ptr;
  readonly #outView: DataView;
  #rspBufPtr = 0n;
  #rspBuf: Uint8Array = EMPTY;

  constructor(lib: Libtpms) {
    this.#lib = lib;
    this.rsp = this.malloc(16);
    try {
      this.#out = this.malloc(16);
    } catch (err) {
      lib.free(this.rsp);
      throw err;
    }
    this.#rspView = new DataView(lib.koffi.view(this.rsp, 16));
    this.#outView = new DataView(lib.koffi.view(this.#out, 16));
    // resp = NULL: libtpms allocates the response buffer on the first Process.
    new Uint8Array(this.#rspView.buffer).fill(0);
  }

  malloc(size: number): Ptr {
    const p = this.#lib.malloc(size);
    if (p === null || p === 0n) throw new EngineError('ENGINE_NO_MEMORY', `malloc(${size}) failed`);
    return p;
  }

  /** `cmd` in malloc()ed memory (at least one byte); the caller frees it. */
  command(cmd: Uint8Array): Ptr {
    const p = this.malloc(Math.max(cmd.length, 1));
    if (cmd.length > 0) new Uint8Array(this.#lib.koffi.view(p, cmd.length)).set(cmd);
    return p;
  }

  /** Copies the response out of libtpms' buffer, which it realloc()s at will. */
  response(version: TpmVersion): Uint8Array {
    const v = this.#rspView;
    const p = v.getBigUint64(0, LE);
    const len = v.getUint32(8, LE);
    if (p === 0n || len < 10) return fatalErrorResponse(version);
    if (p !== this.#rspBufPtr || this.#rspBuf.length < len) {
      const size = Math.max(v.getUint32(12, LE), len);
      this.#rspBuf = new Uint8Array(this.#lib.koffi.view(p, size));
      this.#rspBufPtr = p;
    }
    return Buffer.from(this.#rspBuf.subarray(0, len));
  }

  /** Calls `fn(u8 **buf, len *)`, copies the malloc()ed result out and frees it. */
  takeOut(fn: (buf: Ptr, len: Ptr) => number, sizeT = false): StateResult {
    const v = this.#outView;
    v.setBigUint64(0, 0n, LE);
    v.setBigUint64(8, 0n, LE);
    const rc = fn(this.#out, this.#out + 8n);
    const p = v.getBigUint64(0, LE);
    if (p === 0n) return { rc, data: new Uint8Array(0) };
    const len = sizeT ? Number(v.getBigUint64(8, LE)) : v.getUint32(8, LE);
    try {
      const data =
        len > 0 ? new Uint8Array(new Uint8Array(this.#lib.koffi.view(p, len))) : new Uint8Array(0);
      return { rc, data };
    } finally {
      this.#lib.free(p);
    }
  }

  /**
   * Frees the slots and libtpms' last response buffer (TPM_Realloc is realloc() in
   * libtpms, so free() matches). Only while no Process runs; the object is dead after.
   */
  free(): void {
    const resp = this.#rspView.getBigUint64(0, LE);
    if (resp !== 0n) this.#lib.free(resp);
    this.#rspBuf = EMPTY;
    this.#rspBufPtr = 0n;
    this.#lib.free(this.rsp);
    this.#lib.free(this.#out);
  }
}
