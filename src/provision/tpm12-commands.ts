import { u8, u16, u32 } from '../protocol/tpm/be.js';
/**
 * TPM 1.2 commands that swtpm_setup and swtpm_bios send, byte for byte (TPM 1.2 Part 2/3;
 * provisioning.md §2.5, §6.2). Pure: bytes out, no I/O. Names keep swtpm's constants.
 *
 * @example
 * await link.transmit(tscPhysicalPresence(TPM_PHYSICAL_PRESENCE_CMD_ENABLE));
 */
import { tpmCommand } from '../protocol/tpm/commands.js';

export const TPM_TAG_RQU_COMMAND = 0x00c1;
export const TPM_TAG_RQU_AUTH1_COMMAND = 0x00c2;

export const TPM_ORD_OIAP = 0x0a;
export const TPM_ORD_TAKE_OWNERSHIP = 0x0d;
export const TPM_ORD_CONTINUE_SELF_TEST = 0x53;
export const TPM_ORD_GET_CAPABILITY = 0x65;
export const TPM_ORD_PHYSICAL_ENABLE = 0x6f;
export const TPM_ORD_PHYSICAL_SET_DEACTIVATED = 0x72;
export const TPM_ORD_CREATE_ENDORSEMENT_KEY_PAIR = 0x78;
export const TPM_ORD_STARTUP = 0x99;
export const TPM_ORD_NV_DEFINE_SPACE = 0xcc;
export const TPM_ORD_NV_WRITE_VALUE = 0xcd;
export const TSC_ORD_PHYSICAL_PRESENCE = 0x4000000a;

export const TPM_PHYSICAL_PRESENCE_CMD_ENABLE = 0x0020;
export const TPM_PHYSICAL_PRESENCE_PRESENT = 0x0008;
export const TPM_PHYSICAL_PRESENCE_NOTPRESENT = 0x0010;
export const TPM_PHYSICAL_PRESENCE_LOCK = 0x0004;

export const TPM_ST_CLEAR = 1;
export const TPM_ST_STATE = 2;
export const TPM_ST_DEACTIVATED = 3;

export const TPM_CAP_FLAG = 4;
export const TPM_CAP_FLAG_PERMANENT = 0x108;

export const TPM_ALG_RSA = 1;
export const TPM_ES_RSAESOAEP_SHA1_MGF1 = 3;
export const TPM_SS_RSASSAPKCS1v15_SHA1 = 2;
export const TPM_SS_NONE = 1;
export const TPM_PID_OWNER = 5;
export const TPM_TAG_KEY12 = 0x0028;
export const TPM_KEY_STORAGE = 0x0011;
export const TPM_AUTH_ALWAYS = 1;

export const TPM_TAG_NV_DATA_PUBLIC = 0x0018;
export const TPM_TAG_NV_ATTRIBUTES = 0x0017;
export const TPM_LOC_ALL = 0x1f;
export const TPM_NV_INDEX_D_BIT = 0x10000000;
export const TPM_NV_INDEX_EKCERT = 0xf000;
export const TPM_NV_INDEX_PLATFORMCERT = 0xf002;
export const TPM_NV_INDEX_LOCK = 0xffffffff;
export const TPM_NV_PER_OWNERWRITE = 1 << 1;
export const TPM_NV_PER_OWNERREAD = 1 << 17;

/** The EK and platform certificate indices swtpm_setup defines (TCG index with the D bit). */
export const EK_CERT_NV_INDEX = TPM_NV_INDEX_EKCERT | TPM_NV_INDEX_D_BIT;
export const PLATFORM_CERT_NV_INDEX = TPM_NV_INDEX_PLATFORMCERT | TPM_NV_INDEX_D_BIT;

/** swtpm_setup's fixed antiReplay nonce for CreateEndorsementKeyPair (both versions). */
export const EK_ANTI_REPLAY = Buffer.from('38f03081072b0ca9109808c04b0511c9502352c4', 'hex');

const cmd = (ord: number, ...body: Uint8Array[]) => tpmCommand(TPM_TAG_RQU_COMMAND, ord, ...body);

export const startup12 = (type: number) => cmd(TPM_ORD_STARTUP, u16(type));
export const tscPhysicalPresence = (pp: number) => cmd(TSC_ORD_PHYSICAL_PRESENCE, u16(pp));
export const physicalEnable = () => cmd(TPM_ORD_PHYSICAL_ENABLE);
export const physicalSetDeactivated = (state: number) =>
  cmd(TPM_ORD_PHYSICAL_SET_DEACTIVATED, u8(state));
export const continueSelfTest = () => cmd(TPM_ORD_CONTINUE_SELF_TEST);
export const oiap = () => cmd(TPM_ORD_OIAP);
/** TPM_GetCapability(TPM_CAP_FLAG, TPM_CAP_FLAG_PERMANENT), as swtpm_bios -ea sends it. */
export const getCapabilityPermFlags = () =>
  cmd(TPM_ORD_GET_CAPABILITY, u32(TPM_CAP_FLAG), u32(4), u32(TPM_CAP_FLAG_PERMANENT));

/** TPM_RSA_KEY_PARMS for a 2048-bit key, 2 primes, default exponent. */
const rsaKeyParms2048 = () => Buffer.concat([u32(2048), u32(2), u32(0)]);

/** TPM_KEY_PARMS: RSA, the given schemes, then the sized TPM_RSA_KEY_PARMS. */
function keyParms(encScheme: number, sigScheme: number): Buffer {
  const rsa = rsaKeyParms2048();
  return Buffer.concat([u32(TPM_ALG_RSA), u16(encScheme), u16(sigScheme), u32(rsa.length), rsa]);
}

/** CreateEndorsementKeyPair with the fixed antiReplay and a 2048-bit OAEP key (54 bytes). */
export const createEndorsementKeyPair = () =>
  cmd(
    TPM_ORD_CREATE_ENDORSEMENT_KEY_PAIR,
    EK_ANTI_REPLAY,
    keyParms(TPM_ES_RSAESOAEP_SHA1_MGF1, TPM_SS_RSASSAPKCS1v15_SHA1),
  );

/**
 * The SRK's TPM_KEY12 in TakeOwnership: storage key, no flags, auth always, RSA 2048
 * OAEP without signing, and empty PCR info, public key and encrypted data.
 */
export function srkParams(): Buffer {
  return Buffer.concat([
    u16(TPM_TAG_KEY12),
    u16(0),
    u16(TPM_KEY_STORAGE),
    u32(0),
    u8(TPM_AUTH_ALWAYS),
    keyParms(TPM_ES_RSAESOAEP_SHA1_MGF1, TPM_SS_NONE),
    u32(0),
    u32(0),
    u32(0),
  ]);
}

/**
 * TakeOwnership without its authorization trailer: header (size still to be set by
 * {@link finishAuth1}), TPM_PID_OWNER, both encrypted secrets, the SRK parameters.
 * The owner HMAC covers bytes 6.. of exactly this buffer.
 */
export function takeOwnershipBody(encOwnerAuth: Uint8Array, encSrkAuth: Uint8Array): Buffer {
  return tpmCommand(
    TPM_TAG_RQU_AUTH1_COMMAND,
    TPM_ORD_TAKE_OWNERSHIP,
    u16(TPM_PID_OWNER),
    u32(encOwnerAuth.length),
    encOwnerAuth,
    u32(encSrkAuth.length),
    encSrkAuth,
    srkParams(),
  );
}

/** Appends one auth session (handle, nonceOdd, continue flag, HMAC) and fixes the size. */
export function finishAuth1(
  body: Buffer,
  authHandle: number,
  nonceOdd: Uint8Array,
  continueSession: number,
  auth: Uint8Array,
): Buffer {
  const b = Buffer.concat([body, u32(authHandle), nonceOdd, u8(continueSession), auth]);
  b.writeUInt32BE(b.length, 2);
  return b;
}

/** TPM_PCR_INFO_SHORT selecting no PCR at every locality, with a zero digest. */
const pcrInfoShortAll = () =>
  Buffer.concat([u16(3), Buffer.alloc(3), u8(TPM_LOC_ALL), Buffer.alloc(20)]);

/** NV_DefineSpace with open PCR info, the given attributes and size, and a zero encAuth (101 bytes). */
export function nvDefineSpace(index: number, attributes: number, size: number): Buffer {
  return cmd(
    TPM_ORD_NV_DEFINE_SPACE,
    u16(TPM_TAG_NV_DATA_PUBLIC),
    u32(index),
    pcrInfoShortAll(),
    pcrInfoShortAll(),
    u16(TPM_TAG_NV_ATTRIBUTES),
    u32(attributes),
    Buffer.alloc(3), // bReadSTClear, bWriteSTClear, bWriteDefine
    u32(size),
    Buffer.alloc(20),
  );
}

/** NV_WriteValue of `data` at offset 0 without authorization (NV not yet locked). */
export const nvWriteValue = (index: number, data: Uint8Array) =>
  cmd(TPM_ORD_NV_WRITE_VALUE, u32(index), u32(0), u32(data.length), data);
