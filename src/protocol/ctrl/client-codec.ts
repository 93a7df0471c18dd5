/**
 * Client-side helpers over the control table (commands.ts): response sizes and a
 * big-endian response decoder for the socket view, and the PTM_CAP_* names. Pure: no
 * sockets. The request encoder is encodeSocketRequest (socket.ts).
 */
import { CTRL_TABLE, type CtrlDef, type Field } from './commands.js';
import type { CtrlResponse } from './messages.js';

function fixedSize(f: Field): number {
  return f.type === 'u8' ? 1 : f.type === 'u32' ? 4 : f.type === 'u64' ? 8 : 0;
}

/**
 * Bytes of a successful socket response before any variable data: 8 for
 * GET_CAPABILITY, GET_TPMESTABLISHED and GET_CONFIG, 16 for GET_STATEBLOB and
 * SET_BUFFERSIZE, 12 for GET_INFO, 4 otherwise.
 */
export function respFixedSize(def: CtrlDef): number {
  let n = def.respSize ?? 0;
  for (const f of def.resp) n = Math.max(n, f.off + fixedSize(f));
  return n;
}

/** The response half of the ioctl union, variable data at its full room (3088 for GET_STATEBLOB). */
export function respMaxSize(def: CtrlDef): number {
  let n = respFixedSize(def);
  for (const f of def.resp) if (f.type === 'bytes') n = Math.max(n, f.off + f.max!);
  return n;
}

/** The variable-data field of the response (GET_STATEBLOB `data`, GET_INFO `buffer`), if any. */
export function respDataField(def: CtrlDef): Field | undefined {
  return def.resp.find((f) => f.type === 'bytes');
}

/**
 * Decodes a socket response (big endian) from `buf`. Every field that lies wholly in
 * `buf` is decoded; variable data is cut at what is there. A 4-byte error response
 * therefore yields `{ result }` only. `buf` shorter than 4 bytes decodes as result 0
 * padded with zeros, like a C client's zeroed response buffer.
 */
export function decodeSocketResponse(def: CtrlDef, buf: Uint8Array): CtrlResponse {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const out: Record<string, unknown> = {};
  for (const f of def.resp) {
    if (f.type === 'bytes') {
      const len = out[f.lengthField!];
      if (typeof len !== 'number') continue;
      out[f.name] = b.subarray(f.off, Math.min(b.length, f.off + len));
      continue;
    }
    if (b.length < f.off + fixedSize(f)) continue;
    if (f.type === 'u8') out[f.name] = b.readUInt8(f.off);
    else if (f.type === 'u32') out[f.name] = b.readUInt32BE(f.off);
    else out[f.name] = b.readBigUInt64BE(f.off);
  }
  if (out.result === undefined) {
    // GET_CAPABILITY's layout is one BE u64 (result 0 in its upper half).
    const head = Buffer.alloc(4);
    head.set(b.subarray(0, 4));
    out.result = head.readUInt32BE(0);
  }
  return out as unknown as CtrlResponse;
}

/** PTM_CAP_* bit names without the prefix, from the table (+ SEND_COMMAND_HEADER, no command). */
export const CAP_NAMES: readonly { readonly name: string; readonly bit: number }[] = (() => {
  const seen = new Map<number, string>();
  for (const d of CTRL_TABLE) {
    if (d.cap === 0 || seen.has(d.cap)) continue;
    seen.set(d.cap, d.cap === 0x10 ? 'HASHING' : d.name);
  }
  seen.set(0x8000, 'SEND_COMMAND_HEADER');
  return [...seen].sort((a, b) => a[0] - b[0]).map(([bit, name]) => ({ name, bit }));
})();

/** The names of the PTM_CAP_* bits set in `mask`, e.g. `['INIT', 'SHUTDOWN', …]`. */
export function capabilityNames(mask: number): string[] {
  return CAP_NAMES.filter((c) => (mask & c.bit) !== 0).map((c) => c.name);
}
