// Raw TPM 2 / TPM 1.2 commands for the data channel (TPM 2.0 spec part 3 layouts).
import { createHash, randomBytes } from 'node:crypto';

function tpm2(tag: number, cc: number, body: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(10 + body.length);
  out.writeUInt16BE(tag, 0);
  out.writeUInt32BE(out.length, 2);
  out.writeUInt32BE(cc, 6);
  Buffer.from(body).copy(out, 10);
  return out;
}

/** Password session for TPM_RS_PW with an empty auth value. */
const PW_SESSION = Buffer.from('00000009' + '40000009' + '0000' + '00' + '0000', 'hex');

/** TPM2_Startup(SU_CLEAR = 0 / SU_STATE = 1). */
export const startup2 = (su = 0): Buffer => tpm2(0x8001, 0x144, Buffer.from([0, su]));

/** TPM2_GetRandom(n). */
export const getRandom2 = (n: number): Buffer =>
  tpm2(0x8001, 0x17b, Buffer.from([n >> 8, n & 0xff]));

/** TPM 1.2 TPM_GetRandom(n). */
export function getRandom12(n: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(0x00c1, 0);
  b.writeUInt32BE(14, 2);
  b.writeUInt32BE(0x46, 6);
  b.writeUInt32BE(n, 10);
  return b;
}

/** TPM 1.2 TPM_Startup(ST_CLEAR). */
export const startup12 = (): Buffer => Buffer.from('00c10000000c000000990001', 'hex');

/** TPM2_PCR_Extend(pcr, sha256 digest) with a password session. */
export function pcrExtend2(pcr: number, digest: Uint8Array): Buffer {
  const body = Buffer.alloc(4 + PW_SESSION.length + 4 + 2 + 32);
  let o = body.writeUInt32BE(pcr, 0);
  o += PW_SESSION.copy(body, o);
  o = body.writeUInt32BE(1, o);
  o = body.writeUInt16BE(0x000b, o);
  Buffer.from(digest).copy(body, o);
  return tpm2(0x8002, 0x182, body);
}

/** TPM2_PCR_Read of one PCR in the SHA-256 bank. */
export function pcrRead2(pcr: number): Buffer {
  const sel = Buffer.alloc(3);
  sel[pcr >> 3] = 1 << (pcr & 7);
  const body = Buffer.concat([Buffer.from('00000001000b03', 'hex'), sel]);
  return tpm2(0x8001, 0x17e, body);
}

/** The SHA-256 PCR value from a TPM2_PCR_Read response (last 32 bytes). */
export function pcrValue(rsp: Uint8Array): string {
  return Buffer.from(rsp.subarray(rsp.length - 32)).toString('hex');
}

/** PCR value after extending `digests` in turn into a zero SHA-256 PCR. */
export function extendChain(...digests: Uint8Array[]): string {
  let pcr = Buffer.alloc(32);
  for (const d of digests) pcr = createHash('sha256').update(pcr).update(d).digest();
  return pcr.toString('hex');
}

export const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/**
 * TPM2_CreatePrimary of an RSA-`bits` storage key under the owner hierarchy, with a
 * random `unique` so libtpms cannot return a cached/derived key quickly.
 */
export function createPrimaryRsa(bits: number): Buffer {
  const unique = randomBytes(bits / 8);
  const pub = Buffer.concat([
    Buffer.from('0001000b00030072', 'hex'), // RSA, SHA256, fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|decrypt
    Buffer.from('0000', 'hex'), // authPolicy
    Buffer.from('000600800043', 'hex'), // AES-128-CFB symmetric
    Buffer.from('0010', 'hex'), // scheme NULL
    Buffer.from([bits >> 8, bits & 0xff]),
    Buffer.from('00000000', 'hex'), // exponent
    Buffer.from([unique.length >> 8, unique.length & 0xff]),
    unique,
  ]);
  const pub2b = Buffer.concat([Buffer.from([pub.length >> 8, pub.length & 0xff]), pub]);
  const body = Buffer.concat([
    Buffer.from('40000001', 'hex'), // TPM_RH_OWNER
    PW_SESSION,
    Buffer.from('000400000000', 'hex'), // inSensitive: size 4, empty auth + data
    pub2b,
    Buffer.from('0000', 'hex'), // outsideInfo
    Buffer.from('00000000', 'hex'), // creationPCR: empty
  ]);
  return tpm2(0x8002, 0x131, body);
}

/** Response code of a TPM response (bytes 6..9), or undefined if too short. */
export function rc(rsp: Uint8Array): number | undefined {
  return rsp.length >= 10 ? Buffer.from(rsp).readUInt32BE(6) : undefined;
}
