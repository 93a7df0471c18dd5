/**
 * Pure codec of the FUSE/CUSE messages a character-device server exchanges with the
 * kernel through /dev/cuse: one read() is one request (fuse_in_header + body), one
 * write() is one reply (fuse_out_header + payload, `len` = the total, `unique` echoed,
 * `error` a negative errno with no payload). Integers are host-endian.
 */
import {
  CUSE_INIT,
  FUSE_INTERRUPT,
  FUSE_IOCTL,
  FUSE_OPEN,
  FUSE_POLL,
  FUSE_READ,
  FUSE_RELEASE,
  FUSE_WRITE,
  type StructLayout,
  cuse_init_in,
  fuse_in_header,
  fuse_interrupt_in,
  fuse_ioctl_in,
  fuse_open_in,
  fuse_poll_in,
  fuse_read_in,
  fuse_release_in,
  fuse_write_in,
} from './layout.js';
import { u32, u64 } from './wire.js';

/** A request that cannot be decoded; `code` is stable for logs and tests. */
export class FuseCodecError extends Error {
  readonly code: 'ERR_FUSE_SHORT' | 'ERR_FUSE_LENGTH';
  constructor(code: FuseCodecError['code'], message: string) {
    super(message);
    this.name = 'FuseCodecError';
    this.code = code;
  }
}

/** The fields of fuse_in_header a server uses. */
export interface InHeader {
  readonly len: number;
  readonly opcode: number;
  readonly unique: bigint;
  readonly nodeid: bigint;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
}

export type FuseRequest =
  | {
      readonly op: 'CUSE_INIT';
      readonly h: InHeader;
      readonly major: number;
      readonly minor: number;
      readonly flags: number;
    }
  | {
      readonly op: 'OPEN';
      readonly h: InHeader;
      readonly flags: number;
      readonly openFlags: number;
    }
  | {
      readonly op: 'READ';
      readonly h: InHeader;
      readonly fh: bigint;
      readonly offset: bigint;
      readonly size: number;
      readonly flags: number;
    }
  | {
      readonly op: 'WRITE';
      readonly h: InHeader;
      readonly fh: bigint;
      readonly offset: bigint;
      readonly flags: number;
      readonly data: Buffer;
    }
  | {
      readonly op: 'IOCTL';
      readonly h: InHeader;
      readonly fh: bigint;
      readonly flags: number;
      /** The ioctl request number (unsigned). */
      readonly cmd: number;
      /** The caller's argument pointer, needed for RETRY iovecs. */
      readonly arg: bigint;
      readonly inSize: number;
      readonly outSize: number;
      /** `in_size` bytes copied in by the kernel. */
      readonly data: Buffer;
    }
  | {
      readonly op: 'POLL';
      readonly h: InHeader;
      readonly fh: bigint;
      readonly kh: bigint;
      readonly flags: number;
      readonly events: number;
    }
  | { readonly op: 'RELEASE'; readonly h: InHeader; readonly fh: bigint; readonly flags: number }
  | { readonly op: 'INTERRUPT'; readonly h: InHeader; readonly target: bigint }
  | { readonly op: 'OTHER'; readonly h: InHeader; readonly body: Buffer };
/** `unique` of a request too broken to decode, so it can still get an error reply. */
export function uniqueOf(buf: Buffer): bigint | undefined {
  if (buf.length < fuse_in_header.size) return undefined;
  return u64(buf, fuse_in_header, 'unique');
}

/** Decodes the header of one request. */
export function decodeInHeader(buf: Buffer): InHeader {
  const H = fuse_in_header;
  if (buf.length < H.size) {
    throw new FuseCodecError('ERR_FUSE_SHORT', `request of ${buf.length} bytes has no header`);
  }
  const len = u32(buf, H, 'len');
  if (len !== buf.length) {
    throw new FuseCodecError('ERR_FUSE_LENGTH', `header says ${len} bytes, read ${buf.length}`);
  }
  return {
    len,
    opcode: u32(buf, H, 'opcode'),
    unique: u64(buf, H, 'unique'),
    nodeid: u64(buf, H, 'nodeid'),
    uid: u32(buf, H, 'uid'),
    gid: u32(buf, H, 'gid'),
    pid: u32(buf, H, 'pid'),
  };
}

function body(buf: Buffer, s: StructLayout): Buffer {
  const b = buf.subarray(fuse_in_header.size);
  if (b.length < s.size) {
    throw new FuseCodecError('ERR_FUSE_SHORT', `${s.name} needs ${s.size} bytes, got ${b.length}`);
  }
  return b;
}

/**
 * Decodes one request as read from /dev/cuse (exactly one read()'s bytes). Opcodes a
 * CUSE server does not handle come back as `OTHER` so the caller can answer ENOSYS.
 * Variable data (WRITE, IOCTL) is a view into `buf`.
 */
export function decodeRequest(buf: Buffer): FuseRequest {
  const h = decodeInHeader(buf);
  switch (h.opcode) {
    case CUSE_INIT: {
      const b = body(buf, cuse_init_in);
      const S = cuse_init_in;
      return {
        op: 'CUSE_INIT',
        h,
        major: u32(b, S, 'major'),
        minor: u32(b, S, 'minor'),
        flags: u32(b, S, 'flags'),
      };
    }
    case FUSE_OPEN: {
      const b = body(buf, fuse_open_in);
      return {
        op: 'OPEN',
        h,
        flags: u32(b, fuse_open_in, 'flags'),
        openFlags: u32(b, fuse_open_in, 'open_flags'),
      };
    }
    case FUSE_READ: {
      const b = body(buf, fuse_read_in);
      const S = fuse_read_in;
      return {
        op: 'READ',
        h,
        fh: u64(b, S, 'fh'),
        offset: u64(b, S, 'offset'),
        size: u32(b, S, 'size'),
        flags: u32(b, S, 'flags'),
      };
    }
    case FUSE_WRITE: {
      const b = body(buf, fuse_write_in);
      const S = fuse_write_in;
      const size = u32(b, S, 'size');
      const data = b.subarray(S.size);
      if (data.length !== size) {
        throw new FuseCodecError(
          'ERR_FUSE_LENGTH',
          `WRITE announces ${size} bytes, carries ${data.length}`,
        );
      }
      return {
        op: 'WRITE',
        h,
        fh: u64(b, S, 'fh'),
        offset: u64(b, S, 'offset'),
        flags: u32(b, S, 'flags'),
        data,
      };
    }
    case FUSE_IOCTL: {
      const b = body(buf, fuse_ioctl_in);
      const S = fuse_ioctl_in;
      const inSize = u32(b, S, 'in_size');
      const data = b.subarray(S.size);
      if (data.length !== inSize) {
        throw new FuseCodecError(
          'ERR_FUSE_LENGTH',
          `IOCTL announces ${inSize} bytes, carries ${data.length}`,
        );
      }
      return {
        op: 'IOCTL',
        h,
        fh: u64(b, S, 'fh'),
        flags: u32(b, S, 'flags'),
        cmd: u32(b, S, 'cmd'),
        arg: u64(b, S, 'arg'),
        inSize,
        outSize: u32(b, S, 'out_size'),
        data,
      };
    }
    case FUSE_POLL: {
      const b = body(buf, fuse_poll_in);
      const S = fuse_poll_in;
      return {
        op: 'POLL',
        h,
        fh: u64(b, S, 'fh'),
        kh: u64(b, S, 'kh'),
        flags: u32(b, S, 'flags'),
        events: u32(b, S, 'events'),
      };
    }
    case FUSE_RELEASE: {
      const b = body(buf, fuse_release_in);
      return {
        op: 'RELEASE',
        h,
        fh: u64(b, fuse_release_in, 'fh'),
        flags: u32(b, fuse_release_in, 'flags'),
      };
    }
    case FUSE_INTERRUPT: {
      const b = body(buf, fuse_interrupt_in);
      return { op: 'INTERRUPT', h, target: u64(b, fuse_interrupt_in, 'unique') };
    }
    default:
      return { op: 'OTHER', h, body: buf.subarray(fuse_in_header.size) };
  }
}
