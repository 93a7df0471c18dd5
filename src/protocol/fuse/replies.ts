/** Replies a CUSE server writes to /dev/cuse (one write() each). */
import {
  FUSE_IOCTL_RETRY,
  cuse_init_out,
  fuse_ioctl_iovec,
  fuse_ioctl_out,
  fuse_open_out,
  fuse_out_header,
  fuse_poll_out,
  fuse_write_out,
} from './layout.js';
import { FuseCodecError } from './requests.js';
import { LE, put32, put64, putI32, u32, u64 } from './wire.js';

/** A reply: fuse_out_header (error 0) followed by the payload parts. */
export function encodeReply(unique: bigint, ...payload: Uint8Array[]): Buffer {
  const H = fuse_out_header;
  let len = H.size;
  for (const p of payload) len += p.length;
  const out = Buffer.alloc(len);
  put32(out, H, 'len', len);
  put64(out, H, 'unique', unique);
  let off = H.size;
  for (const p of payload) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** An error reply: header only, `error` = -errno (e.g. 16 for EBUSY). */
export function encodeError(unique: bigint, errno: number): Buffer {
  const H = fuse_out_header;
  const out = Buffer.alloc(H.size);
  put32(out, H, 'len', H.size);
  putI32(out, H, 'error', -Math.abs(errno));
  put64(out, H, 'unique', unique);
  return out;
}

export interface CuseInitOut {
  readonly major: number;
  readonly minor: number;
  readonly flags: number;
  readonly maxRead: number;
  readonly maxWrite: number;
  /** 0 lets the kernel allocate a major. */
  readonly devMajor: number;
  readonly devMinor: number;
}

/**
 * CUSE_INIT reply: cuse_init_out, then the device info strings, each NUL-terminated
 * (`DEVNAME=` is required; the kernel creates /dev/<name>).
 */
export function encodeCuseInitReply(
  unique: bigint,
  o: CuseInitOut,
  info: readonly string[],
): Buffer {
  const S = cuse_init_out;
  const b = Buffer.alloc(S.size);
  put32(b, S, 'major', o.major);
  put32(b, S, 'minor', o.minor);
  put32(b, S, 'flags', o.flags);
  put32(b, S, 'max_read', o.maxRead);
  put32(b, S, 'max_write', o.maxWrite);
  put32(b, S, 'dev_major', o.devMajor);
  put32(b, S, 'dev_minor', o.devMinor);
  const strings = Buffer.from(info.map((s) => `${s}\0`).join(''), 'utf8');
  return encodeReply(unique, b, strings);
}

export function encodeOpenReply(unique: bigint, fh: bigint, openFlags: number): Buffer {
  const b = Buffer.alloc(fuse_open_out.size);
  put64(b, fuse_open_out, 'fh', fh);
  put32(b, fuse_open_out, 'open_flags', openFlags);
  return encodeReply(unique, b);
}

/** WRITE reply: how many bytes were taken (write(2)'s return value). */
export function encodeWriteReply(unique: bigint, size: number): Buffer {
  const b = Buffer.alloc(fuse_write_out.size);
  put32(b, fuse_write_out, 'size', size);
  return encodeReply(unique, b);
}

/** IOCTL reply: ioctl(2) returns `result`; `data` (≤ out_size) is copied to the caller. */
export function encodeIoctlReply(unique: bigint, result: number, data: Uint8Array): Buffer {
  const b = Buffer.alloc(fuse_ioctl_out.size);
  putI32(b, fuse_ioctl_out, 'result', result);
  return encodeReply(unique, b, data);
}

export interface IoVec {
  readonly base: bigint;
  readonly len: number;
}

/**
 * IOCTL RETRY reply (unrestricted ioctls only): the kernel re-sends the request with
 * these input iovecs copied in and room for the output iovecs.
 */
export function encodeIoctlRetry(
  unique: bigint,
  ins: readonly IoVec[],
  outs: readonly IoVec[],
): Buffer {
  const O = fuse_ioctl_out;
  const V = fuse_ioctl_iovec;
  const b = Buffer.alloc(O.size + V.size * (ins.length + outs.length));
  put32(b, O, 'flags', FUSE_IOCTL_RETRY);
  put32(b, O, 'in_iovs', ins.length);
  put32(b, O, 'out_iovs', outs.length);
  [...ins, ...outs].forEach((v, i) => {
    put64(b, V, 'base', v.base, O.size + i * V.size);
    put64(b, V, 'len', BigInt(v.len), O.size + i * V.size);
  });
  return encodeReply(unique, b);
}

export function encodePollReply(unique: bigint, revents: number): Buffer {
  const b = Buffer.alloc(fuse_poll_out.size);
  put32(b, fuse_poll_out, 'revents', revents);
  return encodeReply(unique, b);
}

/** Decodes a reply's header (used by tests playing the kernel). */
export function decodeOutHeader(buf: Buffer): { len: number; error: number; unique: bigint } {
  const H = fuse_out_header;
  if (buf.length < H.size) throw new FuseCodecError('ERR_FUSE_SHORT', 'reply has no header');
  const off = H.fields.error![0];
  return {
    len: u32(buf, H, 'len'),
    error: LE ? buf.readInt32LE(off) : buf.readInt32BE(off),
    unique: u64(buf, H, 'unique'),
  };
}
