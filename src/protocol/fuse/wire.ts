/** Host-endian field access by C field name (FUSE structs are in the machine's byte order). */
import { HOST_LITTLE_ENDIAN } from '../host-endian.js';
import type { StructLayout } from './layout.js';

export const LE = HOST_LITTLE_ENDIAN;

export function u32(b: Buffer, s: StructLayout, f: string, base = 0): number {
  const off = base + s.fields[f]![0];
  return LE ? b.readUInt32LE(off) : b.readUInt32BE(off);
}

export function u64(b: Buffer, s: StructLayout, f: string, base = 0): bigint {
  const off = base + s.fields[f]![0];
  return LE ? b.readBigUInt64LE(off) : b.readBigUInt64BE(off);
}

export function put32(b: Buffer, s: StructLayout, f: string, v: number, base = 0): void {
  const off = base + s.fields[f]![0];
  if (LE) b.writeUInt32LE(v >>> 0, off);
  else b.writeUInt32BE(v >>> 0, off);
}

export function putI32(b: Buffer, s: StructLayout, f: string, v: number, base = 0): void {
  const off = base + s.fields[f]![0];
  if (LE) b.writeInt32LE(v | 0, off);
  else b.writeInt32BE(v | 0, off);
}

export function put64(b: Buffer, s: StructLayout, f: string, v: bigint, base = 0): void {
  const off = base + s.fields[f]![0];
  if (LE) b.writeBigUInt64LE(BigInt.asUintN(64, v), off);
  else b.writeBigUInt64BE(BigInt.asUintN(64, v), off);
}
