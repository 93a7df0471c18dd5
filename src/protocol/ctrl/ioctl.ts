import { HOST_LITTLE_ENDIAN } from '../host-endian.js';
import { type CtrlDef, type Field, ioctlNumber } from './commands.js';
import { CTRL_TABLE } from './commands.js';
import type { CtrlRequest, CtrlResponse } from './messages.js';

/**
 * Host-endian ioctl view of the control table (CUSE PTM_* ioctls): the whole union is
 * passed, fields sit at the same offsets as in the socket view, and integers are in
 * the machine's byte order.
 */

const LE = HOST_LITTLE_ENDIAN;

const BY_IOCTL = new Map<number, CtrlDef>(CTRL_TABLE.map((d) => [ioctlNumber(d), d]));

/** The entry for a PTM_* ioctl request number, or undefined (→ EINVAL). */
export function defByIoctl(request: number): CtrlDef | undefined {
  return BY_IOCTL.get(request >>> 0);
}

function rd(buf: Buffer, f: Field): number | bigint {
  if (f.type === 'u8') return buf.readUInt8(f.off);
  if (f.type === 'u32') return LE ? buf.readUInt32LE(f.off) : buf.readUInt32BE(f.off);
  return LE ? buf.readBigUInt64LE(f.off) : buf.readBigUInt64BE(f.off);
}

function wr(buf: Buffer, f: Field, v: unknown): void {
  if (f.type === 'u8') buf.writeUInt8(v as number, f.off);
  else if (f.type === 'u32') {
    if (LE) buf.writeUInt32LE((v as number) >>> 0, f.off);
    else buf.writeUInt32BE((v as number) >>> 0, f.off);
  } else if (f.type === 'u64') {
    if (LE) buf.writeBigUInt64LE(v as bigint, f.off);
    else buf.writeBigUInt64BE(v as bigint, f.off);
  } else buf.set(v as Uint8Array, f.off);
}

/**
 * Decodes the request half of an ioctl argument. Variable data is bounded by the
 * struct's room (`max`); a larger length is left for the device to reject.
 */
export function decodeIoctlRequest(def: CtrlDef, arg: Buffer): CtrlRequest {
  const fields: Record<string, unknown> = { cmd: def.name };
  for (const f of def.req) {
    if (f.type === 'bytes') {
      const len = Math.min(fields[f.lengthField!] as number, f.max!);
      fields[f.name] = arg.subarray(f.off, f.off + len);
    } else fields[f.name] = rd(arg, f);
  }
  return fields as unknown as CtrlRequest;
}

/**
 * Encodes the response half into a buffer of the union's size. A response that lacks
 * a field of its layout (an error) fills only the 4-byte result and `length` is 4.
 */
export function encodeIoctlResponse(
  def: CtrlDef,
  rsp: CtrlResponse,
): { buf: Buffer; length: number } {
  const buf = Buffer.alloc(def.size);
  const values = rsp as unknown as Record<string, unknown>;
  const complete = def.resp.every((f) => values[f.name] !== undefined);
  if (!complete) {
    wr(buf, { name: 'result', type: 'u32', off: 0 }, rsp.result);
    return { buf, length: 4 };
  }
  for (const f of def.resp) wr(buf, f, values[f.name]);
  return { buf, length: def.size };
}

/** Encodes a request into a whole ioctl argument (used by tswtpm_ioctl on a device). */
export function encodeIoctlRequest(def: CtrlDef, req: CtrlRequest): Buffer {
  const buf = Buffer.alloc(def.size);
  const values = req as unknown as Record<string, unknown>;
  for (const f of def.req) {
    const v = values[f.name];
    if (v !== undefined) wr(buf, f, v);
  }
  return buf;
}

/** Decodes a whole ioctl argument after the call returned (client side). */
export function decodeIoctlResponse(def: CtrlDef, arg: Buffer): CtrlResponse {
  const out: Record<string, unknown> = {};
  for (const f of def.resp) {
    if (f.type === 'bytes') {
      const len = Math.min(out[f.lengthField!] as number, f.max!);
      out[f.name] = Buffer.from(arg.subarray(f.off, f.off + len));
    } else out[f.name] = rd(arg, f);
  }
  if (out.result === undefined) out.result = 0;
  return out as unknown as CtrlResponse;
}
