// Raw TPM command builders and response parsers for the integration and interop tests.
// Hand-written from the TPM 2.0 Part 3 / TPM 1.2 Part 3 layouts (not from src/), so
// the tests check the emulator against the specification rather than against itself.
import { createHash } from 'node:crypto';

export const TPM2_ST_NO_SESSIONS = 0x8001;
export const TPM2_ST_SESSIONS = 0x8002;
export const TPM_TAG_RQU_COMMAND = 0x00c1;
export const TPM_TAG_RSP_COMMAND = 0x00c4;

export const TPM2_CC = {
  Startup: 0x144,
  Shutdown: 0x145,
  CreatePrimary: 0x131,
  FlushContext: 0x165,
  GetRandom: 0x17b,
  PCR_Read: 0x17e,
  PCR_Extend: 0x182,
  PCR_Reset: 0x13d,
} as const;

export const TPM2_SU_CLEAR = 0;
export const TPM2_SU_STATE = 1;
export const TPM_ST_CLEAR = 1;
export const TPM_ST_STATE = 2;

const TPM_RH_OWNER = 0x40000001;
const TPM_RS_PW = 0x40000009;
const TPM_ALG_RSA = 0x0001;
const TPM_ALG_SHA256 = 0x000b;
const TPM_ALG_AES = 0x0006;
const TPM_ALG_CFB = 0x0043;
const TPM_ALG_NULL = 0x0010;

/** Vendor ordinal swtpm answers itself (SetLocality, control-channel.md §3.4). */
export const TPM_CC_SET_LOCALITY = 0x20001000;

/** Result codes the tests look for. */
export const RC = {
  SUCCESS: 0,
  TPM_FAIL: 0x09,
  TPM_INVALID_POSTINIT: 0x26,
  TPM_BAD_LOCALITY: 0x3d,
  TPM_RC_INSUFFICIENT: 0x9a,
  TPM_RC_INITIALIZE: 0x100,
  TPM_RC_FAILURE: 0x101,
  TPM_RC_LOCALITY: 0x107,
} as const;

/** Concatenates parts and writes tag/size/code in front. */
function command(tag: number, code: number, ...body: Uint8Array[]): Buffer {
  const payload = Buffer.concat(body);
  const b = Buffer.alloc(10 + payload.length);
  b.writeUInt16BE(tag, 0);
  b.writeUInt32BE(b.length, 2);
  b.writeUInt32BE(code >>> 0, 6);
  payload.copy(b, 10);
  return b;
}

const u8 = (v: number) => Buffer.from([v & 0xff]);
function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}
const tpm2b = (data: Uint8Array) => Buffer.concat([u16(data.length), data]);

/** An authorization area with one empty-password session (TPM_RS_PW). */
function passwordAuth(): Buffer {
  const session = Buffer.concat([u32(TPM_RS_PW), u16(0), u8(0), u16(0)]);
  return Buffer.concat([u32(session.length), session]);
}

/** TPM2_Startup(su). */
export const startup2 = (su: number) => command(TPM2_ST_NO_SESSIONS, TPM2_CC.Startup, u16(su));

/** TPM2_Shutdown(su). */
export const shutdown2 = (su: number) => command(TPM2_ST_NO_SESSIONS, TPM2_CC.Shutdown, u16(su));

/** TPM2_GetRandom(n). */
export const getRandom2 = (n: number) => command(TPM2_ST_NO_SESSIONS, TPM2_CC.GetRandom, u16(n));

/** TPM2_FlushContext(handle). */
export const flushContext2 = (handle: number) =>
  command(TPM2_ST_NO_SESSIONS, TPM2_CC.FlushContext, u32(handle));

/** TPM2_PCR_Extend(pcr, SHA-256 digest) with an empty-password session. */
export function pcrExtend2(pcr: number, sha256: Uint8Array): Buffer {
  if (sha256.length !== 32) throw new Error('PCR_Extend: digest must be 32 bytes');
  return command(
    TPM2_ST_SESSIONS,
    TPM2_CC.PCR_Extend,
    u32(pcr),
    passwordAuth(),
    u32(1),
    u16(TPM_ALG_SHA256),
    sha256,
  );
}

/** TPM2_PCR_Reset(pcr) with an empty-password session. */
export const pcrReset2 = (pcr: number) =>
  command(TPM2_ST_SESSIONS, TPM2_CC.PCR_Reset, u32(pcr), passwordAuth());

/** TPM2_PCR_Read of one SHA-256 PCR. */
export function pcrRead2(pcr: number): Buffer {
  const select = Buffer.alloc(3);
  select[pcr >> 3] = 1 << (pcr & 7);
  return command(TPM2_ST_NO_SESSIONS, TPM2_CC.PCR_Read, u32(1), u16(TPM_ALG_SHA256), u8(3), select);
}

/**
 * TPM2_CreatePrimary in the owner hierarchy: an RSA storage key (restricted, decrypt,
 * AES-128-CFB) of `bits` bits, the usual SRK template.
 */
export function createPrimaryRsa2(bits: 2048 | 3072 = 2048): Buffer {
  const attrs =
    (1 << 1) | // fixedTPM
    (1 << 4) | // fixedParent
    (1 << 5) | // sensitiveDataOrigin
    (1 << 6) | // userWithAuth
    (1 << 16) | // restricted
    (1 << 17); // decrypt
  const publicArea = Buffer.concat([
    u16(TPM_ALG_RSA),
    u16(TPM_ALG_SHA256),
    u32(attrs),
    tpm2b(Buffer.alloc(0)), // authPolicy
    u16(TPM_ALG_AES),
    u16(128),
    u16(TPM_ALG_CFB),
    u16(TPM_ALG_NULL), // scheme
    u16(bits),
    u32(0), // exponent: default 65537
    tpm2b(Buffer.alloc(0)), // unique
  ]);
  const sensitive = tpm2b(Buffer.concat([u16(0), u16(0)])); // userAuth, data
  return command(
    TPM2_ST_SESSIONS,
    TPM2_CC.CreatePrimary,
    u32(TPM_RH_OWNER),
    passwordAuth(),
    sensitive,
    tpm2b(publicArea),
    tpm2b(Buffer.alloc(0)), // outsideInfo
    u32(0), // creationPCR: none
  );
}

/** TPM 1.2 TPM_Startup(type). */
export const startup12 = (type: number) => command(TPM_TAG_RQU_COMMAND, 0x99, u16(type));

/** TPM 1.2 TPM_GetRandom(n). */
export const getRandom12 = (n: number) => command(TPM_TAG_RQU_COMMAND, 0x46, u32(n));

/** TPM 1.2 TPM_Extend(pcr, SHA-1 digest); needs no authorization. */
export function extend12(pcr: number, sha1: Uint8Array): Buffer {
  if (sha1.length !== 20) throw new Error('TPM_Extend: digest must be 20 bytes');
  return command(TPM_TAG_RQU_COMMAND, 0x14, u32(pcr), sha1);
}

/** TPM 1.2 TPM_PCRRead(pcr). */
export const pcrRead12 = (pcr: number) => command(TPM_TAG_RQU_COMMAND, 0x15, u32(pcr));

/** TPM 1.2 TPM_SaveState (written to tpm-00.savestate, used by TPM_Startup(ST_STATE)). */
export const saveState12 = () => command(TPM_TAG_RQU_COMMAND, 0x98);

/** The 20-byte value of a TPM_PCRRead or TPM_Extend response. */
export function parsePcr12(rsp: Uint8Array): Buffer {
  const r = parseResponse(rsp);
  if (r.rc !== 0) throw new Error(`TPM 1.2 PCR command rc 0x${r.rc.toString(16)}`);
  return r.body.subarray(0, 20);
}

/** swtpm's vendor SetLocality command (tag of the configured TPM version). */
export function setLocalityVendor(tpm2: boolean, locality: number): Buffer {
  return command(
    tpm2 ? TPM2_ST_NO_SESSIONS : TPM_TAG_RQU_COMMAND,
    TPM_CC_SET_LOCALITY,
    u8(locality),
  );
}

/** Wraps a command in the TCG/MS-simulator TPM_SEND_COMMAND prefix. */
export function sendCommandPrefix(locality: number, cmd: Uint8Array): Buffer {
  return Buffer.concat([u32(8), u8(locality), u32(cmd.length), cmd]);
}

export interface TpmResponse {
  readonly tag: number;
  readonly size: number;
  readonly rc: number;
  /** Everything after the 10-byte header. */
  readonly body: Buffer;
}

/** Splits a response into header fields and body; checks the size field. */
export function parseResponse(rsp: Uint8Array): TpmResponse {
  const b = Buffer.from(rsp.buffer, rsp.byteOffset, rsp.byteLength);
  if (b.length < 10) throw new Error(`short TPM response: ${b.toString('hex')}`);
  const size = b.readUInt32BE(2);
  if (size !== b.length) throw new Error(`size field ${size} != ${b.length}: ${b.toString('hex')}`);
  return { tag: b.readUInt16BE(0), size, rc: b.readUInt32BE(6), body: b.subarray(10) };
}

/** The random bytes of a TPM2_GetRandom response. */
export function parseGetRandom2(rsp: Uint8Array): Buffer {
  const r = parseResponse(rsp);
  if (r.rc !== 0) throw new Error(`GetRandom rc 0x${r.rc.toString(16)}`);
  const n = r.body.readUInt16BE(0);
  return r.body.subarray(2, 2 + n);
}

/** The random bytes of a TPM 1.2 TPM_GetRandom response. */
export function parseGetRandom12(rsp: Uint8Array): Buffer {
  const r = parseResponse(rsp);
  if (r.rc !== 0) throw new Error(`TPM_GetRandom rc 0x${r.rc.toString(16)}`);
  const n = r.body.readUInt32BE(0);
  return r.body.subarray(4, 4 + n);
}

/** The single digest of a TPM2_PCR_Read response for one PCR. */
export function parsePcrRead2(rsp: Uint8Array): Buffer {
  const r = parseResponse(rsp);
  if (r.rc !== 0) throw new Error(`PCR_Read rc 0x${r.rc.toString(16)}`);
  let off = 4; // pcrUpdateCounter
  const nsel = r.body.readUInt32BE(off);
  off += 4;
  for (let i = 0; i < nsel; i++) off += 3 + r.body[off + 2]!;
  const ndig = r.body.readUInt32BE(off);
  off += 4;
  if (ndig !== 1) throw new Error(`PCR_Read returned ${ndig} digests`);
  const len = r.body.readUInt16BE(off);
  return r.body.subarray(off + 2, off + 2 + len);
}

/** Object handle and RSA modulus of a TPM2_CreatePrimary response (RSA template). */
export function parseCreatePrimaryRsa(rsp: Uint8Array): { handle: number; modulus: Buffer } {
  const r = parseResponse(rsp);
  if (r.rc !== 0) throw new Error(`CreatePrimary rc 0x${r.rc.toString(16)}`);
  const b = r.body;
  const handle = b.readUInt32BE(0);
  let off = 8 + 2; // handle, parameterSize, outPublic.size
  const type = b.readUInt16BE(off);
  if (type !== TPM_ALG_RSA) throw new Error(`CreatePrimary: type 0x${type.toString(16)}`);
  off += 2 + 2 + 4; // type, nameAlg, objectAttributes
  off += 2 + b.readUInt16BE(off); // authPolicy
  const sym = b.readUInt16BE(off);
  off += sym === TPM_ALG_NULL ? 2 : 6;
  const scheme = b.readUInt16BE(off);
  off += scheme === TPM_ALG_NULL ? 2 : 4;
  off += 2 + 4; // keyBits, exponent
  const n = b.readUInt16BE(off);
  return { handle, modulus: b.subarray(off + 2, off + 2 + n) };
}

/** The value a SHA-256 PCR holds after one extend of a reset (zero) PCR. */
export function extendedOnce(digest: Uint8Array): Buffer {
  return createHash('sha256').update(Buffer.alloc(32)).update(digest).digest();
}

/** Hex without spaces, for readable assertion messages. */
export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
