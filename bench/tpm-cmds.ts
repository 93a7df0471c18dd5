/**
 * The TPM 2 commands the benchmark sends, built from the TPM 2.0 Part 3 layouts, and
 * the few response fields it checks. Built once per run, outside the timed loops.
 */

const TPM2_ST_NO_SESSIONS = 0x8001;
const TPM2_ST_SESSIONS = 0x8002;
const TPM_RH_OWNER = 0x40000001;
const TPM_RS_PW = 0x40000009;
const TPM_ALG_RSA = 0x0001;
const TPM_ALG_SHA256 = 0x000b;
const TPM_ALG_AES = 0x0006;
const TPM_ALG_CFB = 0x0043;
const TPM_ALG_NULL = 0x0010;

const CC = {
  Startup: 0x144,
  NV_DefineSpace: 0x12a,
  NV_Write: 0x137,
  CreatePrimary: 0x131,
  FlushContext: 0x165,
  GetRandom: 0x17b,
  PCR_Extend: 0x182,
} as const;

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

function command(tag: number, code: number, ...body: Uint8Array[]): Buffer {
  const payload = Buffer.concat(body);
  const b = Buffer.alloc(10 + payload.length);
  b.writeUInt16BE(tag, 0);
  b.writeUInt32BE(b.length, 2);
  b.writeUInt32BE(code, 6);
  payload.copy(b, 10);
  return b;
}

/** An authorization area with one empty-password session. */
function passwordAuth(): Buffer {
  const session = Buffer.concat([u32(TPM_RS_PW), u16(0), Buffer.from([0]), u16(0)]);
  return Buffer.concat([u32(session.length), session]);
}

export const startupClear = (): Buffer =>
  command(TPM2_ST_NO_SESSIONS, CC.Startup, u16(0 /* TPM2_SU_CLEAR */));

export const getRandom = (n: number): Buffer => command(TPM2_ST_NO_SESSIONS, CC.GetRandom, u16(n));

/** TPM2_PCR_Extend(pcr) with one SHA-256 digest. */
export function pcrExtend(pcr: number, digest: Uint8Array): Buffer {
  return command(
    TPM2_ST_SESSIONS,
    CC.PCR_Extend,
    u32(pcr),
    passwordAuth(),
    u32(1),
    u16(TPM_ALG_SHA256),
    digest,
  );
}

export const flushContext = (handle: number): Buffer =>
  command(TPM2_ST_NO_SESSIONS, CC.FlushContext, u32(handle));

/** TPM2_CreatePrimary of an RSA storage key (the usual SRK template) in the owner hierarchy. */
export function createPrimaryRsa(bits: 2048 | 3072): Buffer {
  const attrs = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 16) | (1 << 17);
  const publicArea = Buffer.concat([
    u16(TPM_ALG_RSA),
    u16(TPM_ALG_SHA256),
    u32(attrs),
    tpm2b(Buffer.alloc(0)),
    u16(TPM_ALG_AES),
    u16(128),
    u16(TPM_ALG_CFB),
    u16(TPM_ALG_NULL),
    u16(bits),
    u32(0),
    tpm2b(Buffer.alloc(0)),
  ]);
  return command(
    TPM2_ST_SESSIONS,
    CC.CreatePrimary,
    u32(TPM_RH_OWNER),
    passwordAuth(),
    tpm2b(Buffer.concat([u16(0), u16(0)])),
    tpm2b(publicArea),
    tpm2b(Buffer.alloc(0)),
    u32(0),
  );
}

/** TPM2_NV_DefineSpace of an ordinary index readable and writable with its (empty) auth. */
export function nvDefineSpace(index: number, size: number): Buffer {
  // AUTHWRITE | AUTHREAD | NO_DA
  const attrs = (1 << 2) | (1 << 18) | (1 << 25);
  const nvPublic = Buffer.concat([
    u32(index),
    u16(TPM_ALG_SHA256),
    u32(attrs),
    tpm2b(Buffer.alloc(0)),
    u16(size),
  ]);
  return command(
    TPM2_ST_SESSIONS,
    CC.NV_DefineSpace,
    u32(TPM_RH_OWNER),
    passwordAuth(),
    tpm2b(Buffer.alloc(0)),
    tpm2b(nvPublic),
  );
}

/** TPM2_NV_Write of `data` (at most 1024 bytes) at `offset`, authorized by the index itself. */
export function nvWrite(index: number, data: Uint8Array, offset: number): Buffer {
  return command(
    TPM2_ST_SESSIONS,
    CC.NV_Write,
    u32(index),
    u32(index),
    passwordAuth(),
    tpm2b(data),
    u16(offset),
  );
}

/** The response code of a TPM response. */
export const rc = (rsp: Buffer): number => rsp.readUInt32BE(6);

/** The object handle and RSA modulus of a CreatePrimary (RSA template) response. */
export function parseCreatePrimary(rsp: Buffer): { handle: number; modulus: Buffer } {
  if (rc(rsp) !== 0) throw new Error(`CreatePrimary rc 0x${rc(rsp).toString(16)}`);
  const b = rsp.subarray(10);
  const handle = b.readUInt32BE(0);
  let off = 8 + 2 + 2 + 2 + 4; // handle, parameterSize, size, type, nameAlg, attributes
  off += 2 + b.readUInt16BE(off); // authPolicy
  off += b.readUInt16BE(off) === TPM_ALG_NULL ? 2 : 6; // symmetric
  off += b.readUInt16BE(off) === TPM_ALG_NULL ? 2 : 4; // scheme
  off += 2 + 4; // keyBits, exponent
  const n = b.readUInt16BE(off);
  return { handle, modulus: b.subarray(off + 2, off + 2 + n) };
}
