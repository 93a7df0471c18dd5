/** Big-endian integers as TPM commands carry them (TPM 1.2 and TPM 2 alike). */
export const u8 = (v: number): Buffer => Buffer.from([v & 0xff]);

export function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}
