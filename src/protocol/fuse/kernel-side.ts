/**
 * The kernel's half of the codec: builds requests and decodes replies the way
 * fs/fuse/cuse.c and fs/fuse/dev.c do. Servers never need it; tests use it to play
 * the kernel over a socketpair (checked against `linux/fuse.h` by the layout test and
 * against a real kernel by the guest test).
 */
import { HOST_LITTLE_ENDIAN } from '../host-endian.js';
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
  cuse_init_out,
  fuse_in_header,
  fuse_interrupt_in,
  fuse_ioctl_in,
  fuse_ioctl_iovec,
  fuse_ioctl_out,
  fuse_open_in,
  fuse_open_out,
  fuse_out_header,
  fuse_poll_in,
  fuse_read_in,
  fuse_release_in,
  fuse_write_in,
  fuse_write_out,
} from './layout.js';

const LE = HOST_LITTLE_ENDIAN;

type Values = Record<string, number | bigint>;

function fill(s: StructLayout, v: Values): Buffer {
  const b = Buffer.alloc(s.size);
  for (const [name, value] of Object.entries(v)) {
    const f = s.fields[name];
    if (f === undefined) throw new Error(`${s.name} has no field ${name}`);
    const [off, size] = f;
    if (size === 8) {
      if (LE) b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)), off);
      else b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(value)), off);
    } else if (size === 4) {
      if (LE) b.writeUInt32LE(Number(value) >>> 0, off);
      else b.writeUInt32BE(Number(value) >>> 0, off);
    } else b.writeUIntLE(Number(value), off, size);
  }
  return b;
}

function read(s: StructLayout, b: Buffer, base = 0): Record<string, number | bigint> {
  const out: Record<string, number | bigint> = {};
  for (const [name, [off, size]] of Object.entries(s.fields)) {
    if (size === 8) out[name] = LE ? b.readBigUInt64LE(base + off) : b.readBigUInt64BE(base + off);
    else if (size === 4) out[name] = LE ? b.readInt32LE(base + off) : b.readInt32BE(base + off);
  }
  return out;
}

/** Who made the call: uid/gid/pid of the caller (0 for RELEASE, as the kernel sends). */
export interface Caller {
  readonly uid?: number;
  readonly gid?: number;
  readonly pid?: number;
}

/** One request: fuse_in_header (len filled in) + body struct + trailing data. */
export function request(
  opcode: number,
  unique: bigint,
  parts: readonly Uint8Array[],
  who: Caller = {},
): Buffer {
  const len = fuse_in_header.size + parts.reduce((n, p) => n + p.length, 0);
  const h = fill(fuse_in_header, {
    len,
    opcode,
    unique,
    uid: who.uid ?? 0,
    gid: who.gid ?? 0,
    pid: who.pid ?? 0,
  });
  return Buffer.concat([h, ...parts]);
}

export const cuseInitRequest = (unique: bigint, minor = 38, flags = 1): Buffer =>
  request(CUSE_INIT, unique, [fill(cuse_init_in, { major: 7, minor, flags })]);

export const openRequest = (unique: bigint, flags = 0o100002, who?: Caller): Buffer =>
  request(FUSE_OPEN, unique, [fill(fuse_open_in, { flags })], who);

export const readRequest = (unique: bigint, fh: bigint, size: number, flags = 0o100002): Buffer =>
  request(FUSE_READ, unique, [fill(fuse_read_in, { fh, size, read_flags: 2, flags })]);

export const writeRequest = (
  unique: bigint,
  fh: bigint,
  data: Uint8Array,
  flags = 0o100002,
): Buffer =>
  request(FUSE_WRITE, unique, [
    fill(fuse_write_in, { fh, size: data.length, write_flags: 2, flags }),
    data,
  ]);

export interface IoctlCall {
  readonly fh: bigint;
  readonly cmd: number;
  readonly arg?: bigint;
  readonly flags?: number;
  readonly outSize: number;
  /** Bytes copied in (in_size = its length). */
  readonly data?: Uint8Array;
}

export const ioctlRequest = (unique: bigint, c: IoctlCall): Buffer => {
  const data = c.data ?? new Uint8Array(0);
  return request(FUSE_IOCTL, unique, [
    fill(fuse_ioctl_in, {
      fh: c.fh,
      flags: c.flags ?? 0,
      cmd: c.cmd,
      arg: c.arg ?? 0x7ffc0000n,
      in_size: data.length,
      out_size: c.outSize,
    }),
    data,
  ]);
};

export const pollRequest = (unique: bigint, fh: bigint): Buffer =>
  request(FUSE_POLL, unique, [fill(fuse_poll_in, { fh, kh: 1n, flags: 1, events: 0x19 })]);

export const releaseRequest = (unique: bigint, fh: bigint, flags = 0o100002): Buffer =>
  request(FUSE_RELEASE, unique, [fill(fuse_release_in, { fh, flags })]);

export const interruptRequest = (unique: bigint, target: bigint): Buffer =>
  request(FUSE_INTERRUPT, unique, [fill(fuse_interrupt_in, { unique: target })]);

/** A decoded reply: header fields plus the payload after fuse_out_header. */
export interface Reply {
  readonly len: number;
  readonly error: number;
  readonly unique: bigint;
  readonly payload: Buffer;
}

export function parseReply(buf: Buffer): Reply {
  const h = read(fuse_out_header, buf);
  if (h.len !== buf.length) throw new Error(`reply len ${h.len} but ${buf.length} bytes written`);
  return {
    len: h.len as number,
    error: h.error as number,
    unique: h.unique as bigint,
    payload: buf.subarray(fuse_out_header.size),
  };
}

export function parseInitReply(p: Buffer): {
  out: Record<string, number | bigint>;
  info: string[];
} {
  const out = read(cuse_init_out, p);
  const info = p.subarray(cuse_init_out.size).toString('utf8').split('\0').slice(0, -1);
  return { out, info };
}

export const parseOpenReply = (p: Buffer) => read(fuse_open_out, p);
export const parseWriteReply = (p: Buffer) => read(fuse_write_out, p).size as number;

export function parseIoctlReply(p: Buffer): {
  result: number;
  flags: number;
  iovs: Array<{ base: bigint; len: bigint }>;
  data: Buffer;
} {
  const o = read(fuse_ioctl_out, p);
  const n = (o.in_iovs as number) + (o.out_iovs as number);
  const iovs: Array<{ base: bigint; len: bigint }> = [];
  if (((o.flags as number) & 4) !== 0) {
    for (let i = 0; i < n; i++) {
      const v = read(fuse_ioctl_iovec, p, fuse_ioctl_out.size + i * fuse_ioctl_iovec.size);
      iovs.push({ base: v.base as bigint, len: v.len as bigint });
    }
  }
  return {
    result: o.result as number,
    flags: o.flags as number,
    iovs,
    data: p.subarray(fuse_ioctl_out.size),
  };
}
