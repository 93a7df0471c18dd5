import { constants } from 'node:os';
import { diagChannel } from '../diagnostics-channels.js';
import {
  type CtrlDef,
  type CtrlResponse,
  PTM_HASH_DATA_SIZE,
  decodeIoctlRequest,
  defByIoctl,
  encodeIoctlResponse,
  fail,
} from '../protocol/ctrl/index.js';
import {
  CUSE_MIN_MINOR,
  FUSE_IOCTL_COMPAT,
  FUSE_IOCTL_UNRESTRICTED,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  type FuseRequest,
  OPCODE_NAMES,
  decodeRequest,
  encodeCuseInitReply,
  encodeError,
  encodeIoctlReply,
  encodeIoctlRetry,
  encodeOpenReply,
  encodeReply,
  encodeWriteReply,
  uniqueOf,
} from '../protocol/fuse/index.js';
import { TPM_FAIL, TPM_SUCCESS } from '../protocol/tpm/results.js';
import { control, stateCheck } from './control.js';
import { BlobTransfer, EIO_REPLY } from './cuse-transfer.js';
import type { Device } from './device.js';
import { traceWire } from './trace.js';

const { EBUSY, EINTR, EINVAL, EIO, ENOSYS, EPROTO } = constants.errno;

/** swtpm's TPM_REQ_MAX: a write() longer than this is truncated to one command. */
export const CUSE_MAX_COMMAND = 4096;

/** Published per request: { op, unique, ioctl?, error? } (error: errno of a refusal). */
export const cuseRequestChannel = diagChannel('tswtpm:cuse:request');

/** Where replies go: the /dev/cuse channel (or a test's socketpair). */
export interface CuseLink {
  write(reply: Uint8Array): void;
}

export interface CuseSessionOptions {
  /** The device name; the kernel creates /dev/<name>. */
  readonly name: string;
  /** `-M/--maj`, `-m/--min`; 0 lets the kernel allocate. */
  readonly devMajor?: number;
  readonly devMinor?: number;
  /** Largest READ/WRITE request the kernel may send (default 64 KiB). */
  readonly maxRead?: number;
  readonly maxWrite?: number;
  /** The CUSE_INIT reply was written: the kernel is creating /dev/<name>. */
  readonly onInit?: () => void;
  /** A request the session could not make sense of (for the log). */
  readonly onProtocolError?: (err: Error) => void;
}

type Settle<T> = T | Promise<T>;

/**
 * The CUSE front end of one device: answers the kernel's FUSE requests with swtpm's
 * CUSE semantics (control-channel.md §4). PTM_* ioctls go through the host-endian
 * view of the control table and `control()`; read()/write() carry TPM commands (or
 * state blobs, see BlobTransfer). Restricted ioctls: the kernel sizes in/out buffers
 * from the ioctl number, as for swtpm.
 *
 * @example
 * const session = new CuseSession(device, { write: (r) => ch.write(r) }, { name: 'vtpm0' });
 * const ch = CuseChannel.open({ onRequest: (req) => session.handle(req) });
 */
export class CuseSession {
  private readonly dev: Device;
  private readonly link: CuseLink;
  private readonly opts: CuseSessionOptions;
  private readonly xfer: BlobTransfer;
  private initDone = false;
  private opened = false;
  private nextFh = 1n;
  /** The response of the last TPM command, consumed by (partial) reads. */
  private rsp: { buf: Uint8Array; off: number } | undefined;
  /** A long TPM command still running; reads wait for it. */
  private pending: Promise<Uint8Array> | undefined;
  private held: Array<{ unique: bigint; size: number }> = [];

  constructor(dev: Device, link: CuseLink, opts: CuseSessionOptions) {
    this.dev = dev;
    this.link = link;
    this.opts = opts;
    this.xfer = new BlobTransfer(dev);
  }

  /** Handles one request as read from /dev/cuse. */
  handle(buf: Buffer): void {
    try {
      this.dispatchRequest(decodeRequest(buf));
    } catch (err) {
      // A request we cannot decode, or a bug: the caller gets EIO, the server goes on.
      this.opts.onProtocolError?.(err as Error);
      const u = uniqueOf(buf);
      if (u !== undefined) this.error(u, EIO);
    }
  }

  private dispatchRequest(req: FuseRequest): void {
    if (cuseRequestChannel.hasSubscribers) {
      const ioctl = req.op === 'IOCTL' ? defByIoctl(req.cmd)?.name : undefined;
      cuseRequestChannel.publish({ op: req.op, unique: req.h.unique, ioctl });
    }
    const u = req.h.unique;
    switch (req.op) {
      case 'CUSE_INIT':
        this.init(u, req.major, req.minor);
        return;
      case 'OPEN':
        // One opener at a time (swtpm 0.8+).
        if (this.opened) this.error(u, EBUSY);
        else {
          this.opened = true;
          this.link.write(encodeOpenReply(u, this.nextFh++, 0));
        }
        return;
      case 'RELEASE':
        this.opened = false;
        this.link.write(encodeReply(u));
        return;
      case 'READ':
        this.read(u, req.size);
        return;
      case 'WRITE':
        this.write(u, req.data);
        return;
      case 'IOCTL':
        this.ioctl(req);
        return;
      case 'INTERRUPT':
        this.interrupt(req.target);
        return;
      case 'POLL':
        // As libfuse without a poll handler: the kernel then reports "always ready".
        this.error(u, ENOSYS);
        return;
      default:
        this.opts.onProtocolError?.(
          new Error(`unexpected ${OPCODE_NAMES[req.h.opcode] ?? `opcode ${req.h.opcode}`}`),
        );
        this.error(u, ENOSYS);
        return;
    }
  }

  private error(unique: bigint, errno: number): void {
    if (cuseRequestChannel.hasSubscribers) cuseRequestChannel.publish({ unique, error: errno });
    this.link.write(encodeError(unique, errno));
  }

  private init(unique: bigint, major: number, minor: number): void {
    if (this.initDone || major !== FUSE_KERNEL_VERSION || minor < CUSE_MIN_MINOR) {
      this.opts.onProtocolError?.(new Error(`CUSE_INIT ${major}.${minor} refused`));
      this.error(unique, EPROTO);
      return;
    }
    this.initDone = true;
    const o = this.opts;
    const reply = encodeCuseInitReply(
      unique,
      {
        major: FUSE_KERNEL_VERSION,
        minor: Math.min(minor, FUSE_KERNEL_MINOR_VERSION),
        flags: 0, // restricted ioctls, as swtpm
        maxRead: o.maxRead ?? 65536,
        maxWrite: o.maxWrite ?? 65536,
        devMajor: o.devMajor ?? 0,
        devMinor: o.devMinor ?? 0,
      },
      [`DEVNAME=${o.name}`],
    );
    this.link.write(reply);
    o.onInit?.();
  }

  // ---- data path -------------------------------------------------------------------

  private write(unique: bigint, data: Buffer): void {
    const x = this.xfer;
    if (x.mode === 'get') {
      x.reset();
      this.error(unique, EIO);
      return;
    }
    if (x.mode === 'set') {
      if (!x.write(data)) {
        this.error(unique, EIO);
        return;
      }
      this.link.write(encodeWriteReply(unique, data.length));
      return;
    }
    // One command at a time; swtpm answers a write during a long command with EBUSY.
    if (this.pending !== undefined || this.dev.busy) {
      this.error(unique, EBUSY);
      return;
    }
    const cmd = data.subarray(0, CUSE_MAX_COMMAND);
    this.rsp = undefined;
    let r: Settle<Uint8Array>;
    traceWire('SWTPM_IO_Read', cmd, this.dev);
    try {
      r = this.dev.tpmCommand(Buffer.from(cmd), false);
    } catch {
      this.error(unique, EIO);
      return;
    }
    if (r instanceof Promise) {
      const p = r;
      this.pending = p;
      p.then(
        (buf) => {
          if (this.pending === p) this.pending = undefined;
          traceWire('SWTPM_IO_Write', buf, this.dev);
          this.rsp = { buf, off: 0 };
          this.releaseHeld();
        },
        () => {
          if (this.pending === p) this.pending = undefined;
          this.releaseHeld();
        },
      );
    } else {
      traceWire('SWTPM_IO_Write', r, this.dev);
      this.rsp = { buf: r, off: 0 };
    }
    this.link.write(encodeWriteReply(unique, cmd.length));
  }

  private read(unique: bigint, size: number): void {
    const x = this.xfer;
    if (x.mode === 'set') {
      x.reset();
      this.error(unique, EIO);
      return;
    }
    if (x.mode === 'get') {
      this.link.write(encodeReply(unique, x.read(size)));
      return;
    }
    // read() blocks until a running command's response is there.
    if (this.pending !== undefined) {
      this.held.push({ unique, size });
      return;
    }
    this.link.write(encodeReply(unique, this.takeResponse(size)));
  }

  /** Up to `size` bytes of the pending response; a response may be read in pieces. */
  private takeResponse(size: number): Uint8Array {
    const r = this.rsp;
    if (r === undefined) return new Uint8Array(0);
    const part = r.buf.subarray(r.off, r.off + size);
    r.off += part.length;
    if (r.off >= r.buf.length) this.rsp = undefined;
    return part;
  }

  private releaseHeld(): void {
    for (const h of this.held.splice(0)) {
      this.link.write(encodeReply(h.unique, this.takeResponse(h.size)));
    }
  }

  /** A signal for a caller blocked in read(): that read fails with EINTR. */
  private interrupt(target: bigint): void {
    const i = this.held.findIndex((h) => h.unique === target);
    if (i < 0) return;
    this.held.splice(i, 1);
    this.error(target, EINTR);
  }

  // ---- ioctls ----------------------------------------------------------------------

  private ioctl(req: Extract<FuseRequest, { op: 'IOCTL' }>): void {
    const u = req.h.unique;
    // 32-bit callers would see other struct sizes (ptm_getinfo); swtpm refuses them too.
    if (req.flags & FUSE_IOCTL_COMPAT) {
      this.error(u, ENOSYS);
      return;
    }
    const def = defByIoctl(req.cmd);
    if (def === undefined || def.name === 'SET_DATAFD') {
      this.error(u, EINVAL);
      return;
    }
    const needIn = def.dir === 'R' ? 0 : def.size;
    const needOut = def.dir === 'W' ? 0 : def.size;
    if (req.inSize < needIn || req.outSize < needOut) {
      if (!(req.flags & FUSE_IOCTL_UNRESTRICTED)) {
        this.error(u, EINVAL);
        return;
      }
      const iov = [{ base: req.arg, len: def.size }];
      this.link.write(encodeIoctlRetry(u, needIn ? iov : [], needOut ? iov : []));
      return;
    }
    const arg = Buffer.alloc(def.size);
    req.data.copy(arg, 0, 0, Math.min(req.data.length, def.size));
    let r: Settle<CtrlResponse> | typeof EIO_REPLY;
    try {
      r = this.dispatch(def, arg);
    } catch {
      this.error(u, EIO);
      return;
    }
    const send = (rsp: CtrlResponse | typeof EIO_REPLY) => {
      if (rsp === EIO_REPLY) {
        this.error(u, EIO);
        return;
      }
      const { buf, length } = encodeIoctlResponse(def, rsp);
      this.link.write(encodeIoctlReply(u, 0, buf.subarray(0, Math.min(length, req.outSize))));
    };
    if (r instanceof Promise) r.then(send, () => this.error(u, EIO));
    else send(r);
  }

  private dispatch(def: CtrlDef, arg: Buffer): Settle<CtrlResponse> | typeof EIO_REPLY {
    const req = decodeIoctlRequest(def, arg);
    switch (req.cmd) {
      case 'GET_STATEBLOB':
        return this.xfer.get(req);
      case 'SET_STATEBLOB':
        return this.xfer.set(req);
      case 'HASH_DATA': {
        // No streaming on CUSE: more than one struct's worth is TPM_FAIL.
        const pre = stateCheck(this.dev, 'HASH_DATA');
        if (pre === TPM_SUCCESS && req.length > PTM_HASH_DATA_SIZE) return fail(TPM_FAIL);
        return control(this.dev, req);
      }
      case 'INIT':
      case 'STOP':
      case 'SHUTDOWN': {
        // The TPM is terminated: a response nobody read is dropped.
        const r = control(this.dev, req);
        const drop = (x: CtrlResponse) => {
          this.rsp = undefined;
          return x;
        };
        return r instanceof Promise ? r.then(drop) : drop(r);
      }
      case 'STORE_VOLATILE':
        this.xfer.reset();
        return control(this.dev, req);
      default:
        return control(this.dev, req);
    }
  }
}
