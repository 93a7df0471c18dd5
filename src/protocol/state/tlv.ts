import { TLV_HEADER_SIZE } from './constants.js';

/** One swtpm TLV: u16 BE tag, u32 BE length, value. */
export interface Tlv {
  readonly tag: number;
  readonly value: Uint8Array;
}

/**
 * Concatenates TLVs in the given order.
 *
 * @example encodeTlvs([{ tag: TAG_DATA, value: blob }]) // 00 01 <len BE32> ...blob
 */
export function encodeTlvs(tlvs: readonly Tlv[]): Uint8Array {
  let size = 0;
  for (const t of tlvs) size += TLV_HEADER_SIZE + t.value.length;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let off = 0;
  for (const t of tlvs) {
    dv.setUint16(off, t.tag);
    dv.setUint32(off + 2, t.value.length);
    out.set(t.value, off + TLV_HEADER_SIZE);
    off += TLV_HEADER_SIZE + t.value.length;
  }
  return out;
}

/**
 * Returns the value of the first TLV with `tag`, scanning like swtpm's
 * tlv_data_find_tag: the scan stops (not found) at the first TLV that does not fit
 * in the buffer; tags may come in any order; unknown tags are skipped.
 *
 * @example findTlv(body, TAG_HMAC)?.length === 32
 */
export function findTlv(data: Uint8Array, tag: number): Uint8Array | undefined {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  while (off + TLV_HEADER_SIZE <= data.length) {
    const t = dv.getUint16(off);
    const len = dv.getUint32(off + 2);
    const start = off + TLV_HEADER_SIZE;
    if (len > data.length - start) return undefined;
    if (t === tag) return data.subarray(start, start + len);
    off = start + len;
  }
  return undefined;
}

/** Splits a TLV stream; undefined when it is not an exact sequence of TLVs. */
export function decodeTlvs(data: Uint8Array): Tlv[] | undefined {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: Tlv[] = [];
  let off = 0;
  while (off < data.length) {
    if (off + TLV_HEADER_SIZE > data.length) return undefined;
    const len = dv.getUint32(off + 2);
    const start = off + TLV_HEADER_SIZE;
    if (len > data.length - start) return undefined;
    out.push({ tag: dv.getUint16(off), value: data.subarray(start, start + len) });
    off = start + len;
  }
  return out;
}
