import type { CtrlRequest, CtrlResponse } from '../protocol/ctrl/index.js';
import { PTM_STATE_BLOB_SIZE, PTM_STATE_FLAG_DECRYPTED, fail, ok } from '../protocol/ctrl/index.js';
import { TPM_BAD_PARAMETER, TPM_FAIL, TPM_SUCCESS } from '../protocol/tpm/results.js';
import { MAX_STATE_BLOB, control, stateCheck } from './control.js';
import type { Device } from './device.js';

type GetReq = Extract<CtrlRequest, { cmd: 'GET_STATEBLOB' }>;
type SetReq = Extract<CtrlRequest, { cmd: 'SET_STATEBLOB' }>;

/** A result the session turns into a FUSE error instead of an ioctl reply. */
export const EIO_REPLY = 'EIO' as const;

/**
 * CUSE state-blob transfer (control-channel.md §4), on top of the device's
 * whole-blob GET_STATEBLOB/SET_STATEBLOB. The ioctl moves at most 3072 bytes; the
 * rest travels in further ioctls (by offset / in full chunks) or through read() and
 * write() on the device, which this object then owns:
 *
 * - `command`: read()/write() carry TPM commands.
 * - `get`: a GET_STATEBLOB left bytes over; read() returns them, in order, then
 *   switches back to `command`.
 * - `set`: a first SET_STATEBLOB chunk of length 0 started "write mode"; write()
 *   appends, and the next SET_STATEBLOB (length < 3072) commits.
 *
 * read() in `set` or write() in `get` is EIO and returns to `command`.
 */
export class BlobTransfer {
  mode: 'command' | 'get' | 'set' = 'command';
  private got:
    | {
        type: number;
        decrypted: boolean;
        stateFlags: number;
        blob: Uint8Array;
        readOff: number;
      }
    | undefined;
  private pend: { type: number; stateFlags: number; parts: Uint8Array[]; size: number } | undefined;
  private readonly dev: Device;

  constructor(dev: Device) {
    this.dev = dev;
  }

  /** Forgets everything (STORE_VOLATILE and a mode violation drop the cached blob). */
  reset(): void {
    this.got = undefined;
    this.pend = undefined;
    this.mode = 'command';
  }

  /**
   * PTM_GET_STATEBLOB: the blob of (type, decrypted) is fetched once and cached;
   * this call returns up to 3072 bytes from `offset` and `totLength` = the full size.
   * Bytes left over switch to `get` mode; the last chunk drops the cache.
   */
  get(req: GetReq): CtrlResponse | Promise<CtrlResponse> {
    const pre = stateCheck(this.dev, 'GET_STATEBLOB');
    if (pre !== TPM_SUCCESS) return fail(pre);
    const decrypted = (req.stateFlags & PTM_STATE_FLAG_DECRYPTED) !== 0;
    const g = this.got;
    if (g !== undefined && g.type === req.type && g.decrypted === decrypted) {
      return this.chunk(req.offset);
    }
    this.reset();
    const r = control(this.dev, { ...req, offset: 0 });
    const take = (rsp: CtrlResponse): CtrlResponse => {
      if (rsp.result !== TPM_SUCCESS || rsp.data === undefined) return rsp;
      this.got = {
        type: req.type,
        decrypted,
        stateFlags: rsp.stateFlags ?? 0,
        blob: rsp.data,
        readOff: 0,
      };
      return this.chunk(req.offset);
    };
    return r instanceof Promise ? r.then(take) : take(r);
  }

  private chunk(offset: number): CtrlResponse {
    const g = this.got!;
    const data =
      offset < g.blob.length
        ? g.blob.subarray(offset, offset + PTM_STATE_BLOB_SIZE)
        : new Uint8Array(0);
    const end = offset + data.length;
    const rsp = {
      result: TPM_SUCCESS,
      stateFlags: g.stateFlags,
      totLength: g.blob.length,
      length: data.length,
      data,
    };
    if (end >= g.blob.length) this.reset();
    else {
      this.mode = 'get';
      g.readOff = end;
    }
    return rsp;
  }

  /** read() in `get` mode: the next bytes of the cached blob (empty at the end). */
  read(size: number): Uint8Array {
    const g = this.got;
    if (g === undefined) {
      this.reset();
      return new Uint8Array(0);
    }
    const data = g.blob.subarray(g.readOff, g.readOff + size);
    g.readOff += data.length;
    if (g.readOff >= g.blob.length) this.reset();
    return data;
  }

  /**
   * PTM_SET_STATEBLOB: the TPM must be stopped; a chunk of exactly 3072 bytes means
   * more follows, a shorter one is the last and commits the whole blob. A first chunk
   * of length 0 starts write() mode instead. Lock failure is EIO (swtpm also exits).
   */
  set(req: SetReq): CtrlResponse | Promise<CtrlResponse> | typeof EIO_REPLY {
    const pre = stateCheck(this.dev, 'SET_STATEBLOB');
    if (pre !== TPM_SUCCESS) return fail(pre);
    if (!this.dev.ensureLocked()) {
      this.reset();
      return EIO_REPLY;
    }
    if (req.length > PTM_STATE_BLOB_SIZE) return fail(TPM_BAD_PARAMETER);
    this.got = undefined;
    let p = this.pend;
    if (p === undefined || p.type !== req.type) {
      p = { type: req.type, stateFlags: req.stateFlags, parts: [], size: 0 };
      this.pend = p;
      if (req.length === 0) {
        this.mode = 'set';
        return ok;
      }
    }
    if (!this.append(req.data)) return fail(TPM_FAIL);
    if (req.length === PTM_STATE_BLOB_SIZE) return ok;
    const data = Buffer.concat(p.parts);
    this.reset();
    return control(this.dev, {
      cmd: 'SET_STATEBLOB',
      stateFlags: p.stateFlags,
      type: p.type,
      length: data.length,
      data,
    });
  }

  /** write() in `set` mode: appends; false (→ EIO) past swtpm's 512 KiB limit. */
  write(data: Uint8Array): boolean {
    return this.append(data);
  }

  private append(data: Uint8Array): boolean {
    const p = this.pend;
    if (p === undefined) return false;
    if (p.size + data.length > MAX_STATE_BLOB) {
      this.reset();
      return false;
    }
    p.parts.push(Buffer.from(data));
    p.size += data.length;
    return true;
  }
}
