import { TPM_BAD_PARAMETER } from '../tpm/results.js';
import { type CtrlDef, type Field, defByCode, minBody } from './commands.js';
import type { CtrlRequest, CtrlResponse } from './messages.js';

/**
 * Big-endian socket view of the control table (swtpm `--ctrl type=tcp|unixio`):
 * request = BE32 code + the request half of the union; response = the response half,
 * BE, starting with the 4-byte result.
 */

export type DecodeResult =
  | { readonly ok: true; readonly def: CtrlDef; readonly req: CtrlRequest }
  | { readonly ok: false; readonly def: CtrlDef | undefined; readonly result: number };

/**
 * Decodes one request (code + body, as received). Body-length violations give
 * TPM_BAD_PARAMETER, an unknown code gives `def: undefined` (the caller answers
 * TPM_BAD_ORDINAL). Variable data (HASH_DATA, SET_STATEBLOB) is whatever follows the
 * fixed part; the caller decides whether more must be read.
 */
export function decodeSocketRequest(msg: Uint8Array): DecodeResult {
  if (msg.length < 4) return { ok: false, def: undefined, result: TPM_BAD_PARAMETER };
  const view = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
  const def = defByCode(view.readUInt32BE(0));
  if (def === undefined) return { ok: false, def, result: 0 };
  const body = view.subarray(4);
  const rule = def.body;
  if (rule.kind === 'exact' && body.length !== rule.size) {
    return { ok: false, def, result: TPM_BAD_PARAMETER };
  }
  if (rule.kind === 'atLeast' && body.length < rule.size) {
    return { ok: false, def, result: TPM_BAD_PARAMETER };
  }
  const fields: Record<string, unknown> = { cmd: def.name };
  for (const f of def.req) fields[f.name] = readField(body, f, fields);
  return { ok: true, def, req: fields as unknown as CtrlRequest };
}

function readField(body: Buffer, f: Field, prior: Record<string, unknown>): unknown {
  switch (f.type) {
    case 'u8':
      return body.readUInt8(f.off);
    case 'u32':
      return body.readUInt32BE(f.off);
    case 'u64':
      return body.readBigUInt64BE(f.off);
    case 'bytes': {
      // On the socket the data is not bounded by the ioctl chunk size.
      const len = prior[f.lengthField!] as number;
      return body.subarray(f.off, Math.min(body.length, f.off + len));
    }
  }
}

/**
 * How many bytes of a request must have arrived before it can be decoded, given what
 * has arrived so far (`msg` starts with the code). The fixed part of the body is
 * awaited for every command; for HASH_DATA and SET_STATEBLOB the variable tail is
 * streamed separately by the front end. Returns 4 while the code is incomplete.
 */
export function socketBytesNeeded(msg: Uint8Array): number {
  if (msg.length < 4) return 4;
  const code = ((msg[0]! << 24) | (msg[1]! << 16) | (msg[2]! << 8) | msg[3]!) >>> 0;
  const def = defByCode(code);
  return def === undefined ? 4 : 4 + minBody(def);
}

/** Encodes a response; a response missing a field of its layout becomes 4 bytes. */
export function encodeSocketResponse(def: CtrlDef, rsp: CtrlResponse): Buffer {
  const values = rsp as unknown as Record<string, unknown>;
  let size = 0;
  for (const f of def.resp) {
    const v = values[f.name];
    if (v === undefined) return result4(rsp.result);
    size = Math.max(size, f.off + fieldSize(f, v));
  }
  const out = Buffer.alloc(Math.max(size, def.respSize ?? 0));
  for (const f of def.resp) writeField(out, f, values[f.name]);
  return out;
}

function fieldSize(f: Field, v: unknown): number {
  if (f.type === 'u8') return 1;
  if (f.type === 'u32') return 4;
  if (f.type === 'u64') return 8;
  return (v as Uint8Array).length;
}

function writeField(out: Buffer, f: Field, v: unknown): void {
  if (f.type === 'u8') out.writeUInt8(v as number, f.off);
  else if (f.type === 'u32') out.writeUInt32BE((v as number) >>> 0, f.off);
  else if (f.type === 'u64') out.writeBigUInt64BE(v as bigint, f.off);
  else out.set(v as Uint8Array, f.off);
}

/** The bare 4-byte result every error path answers with. */
export function result4(result: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(result >>> 0, 0);
  return b;
}

/** Encodes a request the way well-behaved clients send it (code and body in one write). */
export function encodeSocketRequest(req: CtrlRequest, def: CtrlDef): Buffer {
  const values = req as unknown as Record<string, unknown>;
  let size = 0;
  for (const f of def.req) {
    const v =
      values[f.name] ?? (f.type === 'bytes' ? new Uint8Array(0) : f.type === 'u64' ? 0n : 0);
    size = Math.max(size, f.off + fieldSize(f, v));
  }
  const out = Buffer.alloc(4 + size);
  out.writeUInt32BE(def.code, 0);
  const body = out.subarray(4);
  for (const f of def.req) {
    const v =
      values[f.name] ?? (f.type === 'bytes' ? new Uint8Array(0) : f.type === 'u64' ? 0n : 0);
    writeField(body, f, v);
  }
  return out;
}
