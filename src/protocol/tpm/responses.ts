/**
 * Parsers for the response fields of the commands in commands.ts (TPM 2.0 Part 3,
 * TPM 1.2 Part 3). Pure; each throws on a non-zero result code or a bad size field.
 */
import { TPM_ALG_NULL, TPM_ALG_RSA } from './algorithms.js';
import { TPM_HEADER_SIZE } from './header.js';

export interface TpmResponse {
  readonly tag: number;
  readonly size: number;
  readonly rc: number;
  /** Everything after the 10-byte header. */
  readonly body: Buffer;
}

/** Splits a response into header fields and body; throws unless the size field fits. */
export function parseResponse(rsp: Uint8Array): TpmResponse {
  const b = Buffer.from(rsp.buffer, rsp.byteOffset, rsp.byteLength);
  if (b.length < TPM_HEADER_SIZE) throw new Error(`short TPM response: ${b.toString('hex')}`);
  const size = b.readUInt32BE(2);
  if (size !== b.length) throw new Error(`size field ${size} != ${b.length}: ${b.toString('hex')}`);
  return { tag: b.readUInt16BE(0), size, rc: b.readUInt32BE(6), body: b.subarray(TPM_HEADER_SIZE) };
}

/** The body of a successful response; throws with `what` and the result code otherwise. */
function successBody(what: string, rsp: Uint8Array): Buffer {
  const r = parseResponse(rsp);
  if (r.rc !== 0) throw new Error(`${what} rc 0x${r.rc.toString(16)}`);
  return r.body;
}

/** The random bytes of a TPM2_GetRandom response. */
export function parseGetRandom2(rsp: Uint8Array): Buffer {
  const body = successBody('GetRandom', rsp);
  return body.subarray(2, 2 + body.readUInt16BE(0));
}

/** The single digest of a TPM2_PCR_Read response for one PCR. */
export function parsePcrRead2(rsp: Uint8Array): Buffer {
  const body = successBody('PCR_Read', rsp);
  let off = 4; // pcrUpdateCounter
  const nsel = body.readUInt32BE(off);
  off += 4;
  for (let i = 0; i < nsel; i++) off += 3 + body[off + 2]!;
  const ndig = body.readUInt32BE(off);
  off += 4;
  if (ndig !== 1) throw new Error(`PCR_Read returned ${ndig} digests`);
  const len = body.readUInt16BE(off);
  return body.subarray(off + 2, off + 2 + len);
}

/** Object handle and outPublic (TPMT_PUBLIC, without its size) of a TPM2_CreatePrimary response. */
export function parseCreatePrimary2(rsp: Uint8Array): { handle: number; outPublic: Buffer } {
  const b = successBody('CreatePrimary', rsp);
  const size = b.readUInt16BE(8); // after objectHandle, parameterSize
  return { handle: b.readUInt32BE(0), outPublic: b.subarray(10, 10 + size) };
}

/** Object handle and RSA modulus of a TPM2_CreatePrimary response (RSA template). */
export function parseCreatePrimaryRsa2(rsp: Uint8Array): { handle: number; modulus: Buffer } {
  const { handle, outPublic: p } = parseCreatePrimary2(rsp);
  const type = p.readUInt16BE(0);
  if (type !== TPM_ALG_RSA) throw new Error(`CreatePrimary: type 0x${type.toString(16)}`);
  let off = 2 + 2 + 4; // type, nameAlg, objectAttributes
  off += 2 + p.readUInt16BE(off); // authPolicy
  off += p.readUInt16BE(off) === TPM_ALG_NULL ? 2 : 6; // symmetric
  off += p.readUInt16BE(off) === TPM_ALG_NULL ? 2 : 4; // scheme
  off += 2 + 4; // keyBits, exponent
  const n = p.readUInt16BE(off);
  return { handle, modulus: p.subarray(off + 2, off + 2 + n) };
}

/** The random bytes of a TPM 1.2 TPM_GetRandom response. */
export function parseGetRandom12(rsp: Uint8Array): Buffer {
  const body = successBody('TPM_GetRandom', rsp);
  return body.subarray(4, 4 + body.readUInt32BE(0));
}

/** The 20-byte value of a TPM 1.2 TPM_PCRRead or TPM_Extend response. */
export function parsePcr12(rsp: Uint8Array): Buffer {
  return successBody('TPM 1.2 PCR command', rsp).subarray(0, 20);
}
