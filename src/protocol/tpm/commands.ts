import {
  TPM_ALG_AES,
  TPM_ALG_CFB,
  TPM_ALG_ECC,
  TPM_ALG_NULL,
  TPM_ALG_RSA,
  TPM_ALG_SHA256,
  TPM_ECC_NIST_P256,
} from './algorithms.js';
import { u8, u16, u32 } from './be.js';
/**
 * Builders for a handful of common TPM 2.0 and TPM 1.2 commands, and parsers for the
 * response fields they return. Pure: bytes out, bytes in, no I/O. Layouts follow
 * TPM 2.0 Part 3 and TPM 1.2 Part 3; the unit test pins each builder to golden bytes
 * that the interop tests send to Debian's swtpm.
 *
 * Meant for use with {@link TpmClient} (and by tswtpm's own tests and benchmarks):
 *
 * @example
 * ```ts
 * import { TpmClient, tpm2 } from 'tswtpm';
 * const tpm = new TpmClient({ port: 2321 });
 * await tpm.transmit(tpm2.startup(tpm2.SU_CLEAR));
 * const random = tpm2.parseGetRandom(await tpm.transmit(tpm2.getRandom(16)));
 * ```
 */
import {
  TPM2_CC_SHUTDOWN,
  TPM2_CC_STARTUP,
  TPM2_ST_NO_SESSIONS,
  TPM2_ST_SESSIONS,
  TPM2_SU_CLEAR,
  TPM2_SU_STATE,
  TPM_CC_SET_LOCALITY,
  TPM_HEADER_SIZE,
  TPM_ORD_STARTUP,
} from './header.js';
import { TPM_SEND_COMMAND } from './prefix.js';
import {
  parseCreatePrimary2,
  parseCreatePrimaryRsa2,
  parseGetRandom2,
  parseGetRandom12,
  parsePcr12,
  parsePcrRead2,
  parseResponse,
} from './responses.js';

export { TPM2_SU_CLEAR, TPM2_SU_STATE } from './header.js';
export * from './algorithms.js';
export * from './responses.js';

/** TPM 1.2 request tag (TPM_TAG_RQU_COMMAND). */
export const TPM_TAG_RQU_COMMAND = 0x00c1;

/** TPM 2 command codes of the builders below (TPM 2.0 Part 2, 6.5.2). */
export const TPM2_CC = {
  NV_DefineSpace: 0x12a,
  CreatePrimary: 0x131,
  NV_Increment: 0x134,
  NV_Write: 0x137,
  PCR_Reset: 0x13d,
  Startup: TPM2_CC_STARTUP,
  Shutdown: TPM2_CC_SHUTDOWN,
  NV_Read: 0x14e,
  FlushContext: 0x165,
  GetRandom: 0x17b,
  PCR_Read: 0x17e,
  PCR_Extend: 0x182,
} as const;

/** TPM 1.2 ordinals of the builders below (TPM 1.2 Part 2, 17). */
export const TPM_ORD = {
  Extend: 0x14,
  PCRRead: 0x15,
  GetRandom: 0x46,
  SaveState: 0x98,
  Startup: TPM_ORD_STARTUP,
} as const;

/** TPM 1.2 TPM_STARTUP_TYPE values. */
export const TPM_ST_CLEAR = 1;
export const TPM_ST_STATE = 2;

export const TPM_RH_OWNER = 0x40000001;
export const TPM_RH_ENDORSEMENT = 0x4000000b;
const TPM_RS_PW = 0x40000009;

/** TPMA_NV bits (TPM 2.0 Part 2, 13.4). */
export const TPMA_NV = {
  OWNERWRITE: 1 << 1,
  AUTHWRITE: 1 << 2,
  /** TPM_NT_COUNTER in the TPM_NT field (bits 7:4). */
  NT_COUNTER: 1 << 4,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  NO_DA: 1 << 25,
} as const;

/**
 * objectAttributes of the usual storage-key (SRK/EK) template: fixedTPM, fixedParent,
 * sensitiveDataOrigin, userWithAuth, restricted, decrypt.
 */
const STORAGE_KEY_ATTRS = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 16) | (1 << 17);

const tpm2b = (data: Uint8Array) => Buffer.concat([u16(data.length), data]);
const EMPTY = Buffer.alloc(0);

/**
 * A command: tag, size and code in front of the concatenated `body` parts.
 *
 * @example
 * ```ts
 * tpmCommand(0x8001, 0x17b, Buffer.from([0, 16])); // TPM2_GetRandom(16)
 * ```
 */
export function tpmCommand(tag: number, code: number, ...body: Uint8Array[]): Buffer {
  const payload = Buffer.concat(body);
  const b = Buffer.alloc(TPM_HEADER_SIZE + payload.length);
  b.writeUInt16BE(tag, 0);
  b.writeUInt32BE(b.length, 2);
  b.writeUInt32BE(code >>> 0, 6);
  payload.copy(b, TPM_HEADER_SIZE);
  return b;
}

/** An authorization area with one empty-password session (TPM_RS_PW). */
function passwordAuth(): Buffer {
  const session = Buffer.concat([u32(TPM_RS_PW), u16(0), u8(0), u16(0)]);
  return Buffer.concat([u32(session.length), session]);
}

// ---- TPM 2 ------------------------------------------------------------------------

/** TPM2_Startup(su), by default SU_CLEAR. */
export const startup2 = (su: number = TPM2_SU_CLEAR) =>
  tpmCommand(TPM2_ST_NO_SESSIONS, TPM2_CC.Startup, u16(su));

/** TPM2_Shutdown(su). */
export const shutdown2 = (su: number) => tpmCommand(TPM2_ST_NO_SESSIONS, TPM2_CC.Shutdown, u16(su));

/** TPM2_GetRandom(n). */
export const getRandom2 = (n: number) => tpmCommand(TPM2_ST_NO_SESSIONS, TPM2_CC.GetRandom, u16(n));

/** TPM2_FlushContext(handle). */
export const flushContext2 = (handle: number) =>
  tpmCommand(TPM2_ST_NO_SESSIONS, TPM2_CC.FlushContext, u32(handle));

/** TPM2_PCR_Extend(pcr, SHA-256 digest) with an empty-password session. */
export function pcrExtend2(pcr: number, sha256: Uint8Array): Buffer {
  if (sha256.length !== 32) throw new Error('PCR_Extend: digest must be 32 bytes');
  return tpmCommand(
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
  tpmCommand(TPM2_ST_SESSIONS, TPM2_CC.PCR_Reset, u32(pcr), passwordAuth());

/**
 * TPM2_PCR_Read of the PCRs set in the 24-bit mask `pcrs` (bit n = PCR n) in bank `alg`.
 * A response carries at most 8 digests; read the rest with the bits not yet returned.
 */
export function pcrReadSelect2(alg: number, pcrs: number): Buffer {
  const select = Buffer.alloc(3);
  select.writeUIntLE(pcrs, 0, 3);
  return tpmCommand(TPM2_ST_NO_SESSIONS, TPM2_CC.PCR_Read, u32(1), u16(alg), u8(3), select);
}

/** TPM2_PCR_Read of one SHA-256 PCR. */
export const pcrRead2 = (pcr: number) => pcrReadSelect2(TPM_ALG_SHA256, 2 ** pcr);

/**
 * TPM2_CreatePrimary in `hierarchy` (default owner): an RSA storage key (restricted,
 * decrypt, AES-128-CFB) of `bits` bits, the usual SRK template. A random `unique`
 * keeps libtpms from deriving the same key again quickly.
 */
export function createPrimaryRsa2(
  bits = 2048,
  unique: Uint8Array = EMPTY,
  hierarchy = TPM_RH_OWNER,
): Buffer {
  const publicArea = Buffer.concat([
    storageKeyHead(TPM_ALG_RSA),
    u16(bits),
    u32(0), // exponent: default 65537
    tpm2b(unique),
  ]);
  return createPrimary2(hierarchy, publicArea);
}

/**
 * TPM2_CreatePrimary in `hierarchy` (default endorsement) of an ECC NIST P-256 storage
 * key (restricted, decrypt, AES-128-CFB), the usual EK-style template.
 */
export function createPrimaryEcc2(hierarchy = TPM_RH_ENDORSEMENT): Buffer {
  const publicArea = Buffer.concat([
    storageKeyHead(TPM_ALG_ECC),
    u16(TPM_ECC_NIST_P256),
    u16(TPM_ALG_NULL), // kdf
    tpm2b(EMPTY), // unique.x
    tpm2b(EMPTY), // unique.y
  ]);
  return createPrimary2(hierarchy, publicArea);
}

/**
 * TPMT_PUBLIC up to the type-specific details: `type`, nameAlg SHA-256, the storage-key
 * attributes, empty authPolicy, AES-128-CFB symmetric, NULL scheme.
 */
function storageKeyHead(type: number): Buffer {
  const aes128Cfb = [u16(TPM_ALG_AES), u16(128), u16(TPM_ALG_CFB)];
  return Buffer.concat([
    u16(type),
    u16(TPM_ALG_SHA256),
    u32(STORAGE_KEY_ATTRS),
    tpm2b(EMPTY),
    ...aes128Cfb,
    u16(TPM_ALG_NULL),
  ]);
}

function createPrimary2(hierarchy: number, publicArea: Buffer): Buffer {
  return tpmCommand(
    TPM2_ST_SESSIONS,
    TPM2_CC.CreatePrimary,
    u32(hierarchy),
    passwordAuth(),
    tpm2b(Buffer.concat([u16(0), u16(0)])), // inSensitive: empty userAuth, data
    tpm2b(publicArea),
    tpm2b(EMPTY), // outsideInfo
    u32(0), // creationPCR: none
  );
}

/**
 * TPM2_NV_DefineSpace in the owner hierarchy (empty auth for the index). The default
 * attributes make an ordinary index read- and writable with its own auth, no DA.
 */
export function nvDefineSpace2(
  index: number,
  size: number,
  attrs: number = TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA,
): Buffer {
  const nvPublic = Buffer.concat([
    u32(index),
    u16(TPM_ALG_SHA256),
    u32(attrs),
    tpm2b(EMPTY),
    u16(size),
  ]);
  return tpmCommand(
    TPM2_ST_SESSIONS,
    TPM2_CC.NV_DefineSpace,
    u32(TPM_RH_OWNER),
    passwordAuth(),
    tpm2b(EMPTY),
    tpm2b(nvPublic),
  );
}

/** TPM2_NV_Write of `data` at `offset`, authorized by the index itself. */
export const nvWrite2 = (index: number, data: Uint8Array, offset = 0) =>
  tpmCommand(
    TPM2_ST_SESSIONS,
    TPM2_CC.NV_Write,
    u32(index),
    u32(index),
    passwordAuth(),
    tpm2b(data),
    u16(offset),
  );

/** TPM2_NV_Increment of a counter index, authorized by the index itself. */
export const nvIncrement2 = (index: number) =>
  tpmCommand(TPM2_ST_SESSIONS, TPM2_CC.NV_Increment, u32(index), u32(index), passwordAuth());

/** TPM2_NV_Read of `size` bytes at `offset`, authorized by the index itself. */
export const nvRead2 = (index: number, size: number, offset = 0) =>
  tpmCommand(
    TPM2_ST_SESSIONS,
    TPM2_CC.NV_Read,
    u32(index),
    u32(index),
    passwordAuth(),
    u16(size),
    u16(offset),
  );

// ---- TPM 1.2 ----------------------------------------------------------------------

/** TPM 1.2 TPM_Startup(type), by default ST_CLEAR. */
export const startup12 = (type: number = TPM_ST_CLEAR) =>
  tpmCommand(TPM_TAG_RQU_COMMAND, TPM_ORD.Startup, u16(type));

/** TPM 1.2 TPM_GetRandom(n). */
export const getRandom12 = (n: number) =>
  tpmCommand(TPM_TAG_RQU_COMMAND, TPM_ORD.GetRandom, u32(n));

/** TPM 1.2 TPM_Extend(pcr, SHA-1 digest); needs no authorization. */
export function extend12(pcr: number, sha1: Uint8Array): Buffer {
  if (sha1.length !== 20) throw new Error('TPM_Extend: digest must be 20 bytes');
  return tpmCommand(TPM_TAG_RQU_COMMAND, TPM_ORD.Extend, u32(pcr), sha1);
}

/** TPM 1.2 TPM_PCRRead(pcr). */
export const pcrRead12 = (pcr: number) =>
  tpmCommand(TPM_TAG_RQU_COMMAND, TPM_ORD.PCRRead, u32(pcr));

/** TPM 1.2 TPM_SaveState (written to tpm-00.savestate, used by TPM_Startup(ST_STATE)). */
export const saveState12 = () => tpmCommand(TPM_TAG_RQU_COMMAND, TPM_ORD.SaveState);

// ---- swtpm extensions -------------------------------------------------------------

/** swtpm's vendor SetLocality command, with the request tag of the TPM version. */
export function setLocalityVendor(tpm2: boolean, locality: number): Buffer {
  return tpmCommand(
    tpm2 ? TPM2_ST_NO_SESSIONS : TPM_TAG_RQU_COMMAND,
    TPM_CC_SET_LOCALITY,
    u8(locality),
  );
}

/** Wraps a command in the TCG/MS-simulator TPM_SEND_COMMAND prefix. */
export function sendCommandPrefix(locality: number, cmd: Uint8Array): Buffer {
  return Buffer.concat([u32(TPM_SEND_COMMAND), u8(locality), u32(cmd.length), cmd]);
}

// ---- the public API ---------------------------------------------------------------

/**
 * TPM 2.0 command builders and response parsers, for use with `TpmClient.transmit`.
 *
 * @example
 * ```ts
 * await tpm.transmit(tpm2.startup());
 * await tpm.transmit(tpm2.pcrExtend(16, createHash('sha256').update('x').digest()));
 * const value = tpm2.parsePcrRead(await tpm.transmit(tpm2.pcrRead(16)));
 * ```
 */
export const tpm2 = {
  SU_CLEAR: TPM2_SU_CLEAR,
  SU_STATE: TPM2_SU_STATE,
  command: tpmCommand,
  startup: startup2,
  shutdown: shutdown2,
  getRandom: getRandom2,
  flushContext: flushContext2,
  pcrExtend: pcrExtend2,
  pcrReset: pcrReset2,
  pcrRead: pcrRead2,
  pcrReadSelect: pcrReadSelect2,
  createPrimaryRsa: createPrimaryRsa2,
  createPrimaryEcc: createPrimaryEcc2,
  nvDefineSpace: nvDefineSpace2,
  nvWrite: nvWrite2,
  nvIncrement: nvIncrement2,
  nvRead: nvRead2,
  parseResponse,
  parseGetRandom: parseGetRandom2,
  parsePcrRead: parsePcrRead2,
  parseCreatePrimary: parseCreatePrimary2,
  parseCreatePrimaryRsa: parseCreatePrimaryRsa2,
} as const;

/**
 * TPM 1.2 command builders and response parsers, for use with `TpmClient.transmit`.
 *
 * @example
 * ```ts
 * await tpm.transmit(tpm12.startup(tpm12.ST_CLEAR));
 * const random = tpm12.parseGetRandom(await tpm.transmit(tpm12.getRandom(16)));
 * ```
 */
export const tpm12 = {
  ST_CLEAR: TPM_ST_CLEAR,
  ST_STATE: TPM_ST_STATE,
  command: tpmCommand,
  startup: startup12,
  getRandom: getRandom12,
  extend: extend12,
  pcrRead: pcrRead12,
  saveState: saveState12,
  parseResponse,
  parseGetRandom: parseGetRandom12,
  parsePcr: parsePcr12,
} as const;
