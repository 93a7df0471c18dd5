/**
 * The TPM 2 commands swtpm_setup sends, byte for byte (provisioning.md §2.2): every
 * session command carries one empty password session, hierarchy authorizations are empty.
 */

export const TPM2_ST_NO_SESSIONS = 0x8001;
export const TPM2_ST_SESSIONS = 0x8002;

export const TPM2_CC_EvictControl = 0x120;
export const TPM2_CC_NV_DefineSpace = 0x12a;
export const TPM2_CC_PCR_Allocate = 0x12b;
export const TPM2_CC_CreatePrimary = 0x131;
export const TPM2_CC_NV_Write = 0x137;
export const TPM2_CC_NV_WriteLock = 0x138;
export const TPM2_CC_Shutdown = 0x145;
export const TPM2_CC_FlushContext = 0x165;
export const TPM2_CC_GetCapability = 0x17a;

export const TPM_RH_OWNER = 0x40000001;
export const TPM_RS_PW = 0x40000009;
export const TPM_RH_ENDORSEMENT = 0x4000000b;
export const TPM_RH_PLATFORM = 0x4000000c;
export const TPM_CAP_PCRS = 5;
export const TPM2_SU_CLEAR = 0;
export const TPM2_ALG_SHA256 = 0x000b;

/** Big-endian byte builder. */
export class Bytes {
  private readonly parts: number[] = [];
  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v >>> 8).u8(v);
  }
  u32(v: number): this {
    return this.u16(v >>> 16).u16(v & 0xffff);
  }
  bytes(b: Uint8Array): this {
    for (const x of b) this.parts.push(x);
    return this;
  }
  /** TPM2B: u16 size + bytes. */
  sized(b: Uint8Array): this {
    return this.u16(b.length).bytes(b);
  }
  done(): Buffer {
    return Buffer.from(this.parts);
  }
}

/** `u32 authSize = 9` + TPMS_AUTH_COMMAND of TPM_RS_PW with empty nonce and hmac. */
const PW_SESSION = new Bytes().u32(9).u32(TPM_RS_PW).u16(0).u8(0).u16(0).done();

function command(tag: number, code: number, body: Uint8Array): Buffer {
  return new Bytes()
    .u16(tag)
    .u32(10 + body.length)
    .u32(code)
    .bytes(body)
    .done();
}

/** Handles, then the password session, then the parameters. */
function withAuth(code: number, handles: readonly number[], params: Uint8Array): Buffer {
  const b = new Bytes();
  for (const h of handles) b.u32(h);
  return command(TPM2_ST_SESSIONS, code, b.bytes(PW_SESSION).bytes(params).done());
}

/** TPM2_CreatePrimary with an empty sensitive part, no outside info, no creation PCRs. */
export function createPrimary(hierarchy: number, template: Uint8Array): Buffer {
  const params = new Bytes().u16(4).u16(0).u16(0).sized(template).u16(0).u32(0).done();
  return withAuth(TPM2_CC_CreatePrimary, [hierarchy], params);
}

export function evictControl(objectHandle: number, persistentHandle: number): Buffer {
  return withAuth(
    TPM2_CC_EvictControl,
    [TPM_RH_OWNER, objectHandle],
    new Bytes().u32(persistentHandle).done(),
  );
}

export function flushContext(handle: number): Buffer {
  return command(TPM2_ST_NO_SESSIONS, TPM2_CC_FlushContext, new Bytes().u32(handle).done());
}

/** TPM2_NV_DefineSpace by the platform: empty auth, SHA-256 name, no policy. */
export function nvDefineSpace(index: number, attributes: number, size: number): Buffer {
  const pub = new Bytes().u32(index).u16(TPM2_ALG_SHA256).u32(attributes).u16(0).u16(size).done();
  return withAuth(TPM2_CC_NV_DefineSpace, [TPM_RH_PLATFORM], new Bytes().u16(0).sized(pub).done());
}

export function nvWrite(index: number, data: Uint8Array, offset: number): Buffer {
  return withAuth(
    TPM2_CC_NV_Write,
    [TPM_RH_PLATFORM, index],
    new Bytes().sized(data).u16(offset).done(),
  );
}

export function nvWriteLock(index: number): Buffer {
  return withAuth(TPM2_CC_NV_WriteLock, [TPM_RH_PLATFORM, index], new Uint8Array(0));
}

/** TPM2_GetCapability(TPM_CAP_PCRS, 0, 64). */
export function getCapabilityPcrs(): Buffer {
  return command(
    TPM2_ST_NO_SESSIONS,
    TPM2_CC_GetCapability,
    new Bytes().u32(TPM_CAP_PCRS).u32(0).u32(64).done(),
  );
}

/** One bank of a PCR_Allocate: all 24 PCRs on or off. */
export interface BankChoice {
  readonly alg: number;
  readonly on: boolean;
}

export function pcrAllocate(banks: readonly BankChoice[]): Buffer {
  const b = new Bytes().u32(banks.length);
  for (const { alg, on } of banks)
    b.u16(alg)
      .u8(3)
      .bytes(Buffer.alloc(3, on ? 0xff : 0));
  return withAuth(TPM2_CC_PCR_Allocate, [TPM_RH_PLATFORM], b.done());
}

export function shutdown(su = TPM2_SU_CLEAR): Buffer {
  return command(TPM2_ST_NO_SESSIONS, TPM2_CC_Shutdown, new Bytes().u16(su).done());
}

/** A TPM response that does not have the shape swtpm_setup expects. */
export class TpmResponseError extends Error {
  readonly code = 'ERR_TPM_RESPONSE';
}

/** The response code of a response of at least 10 bytes. */
export const responseCode = (rsp: Uint8Array): number =>
  Buffer.from(rsp.buffer, rsp.byteOffset, rsp.byteLength).readUInt32BE(6);
