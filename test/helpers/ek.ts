import { TpmClient } from '../../src/client/index.js';
import {
  TPM2_CC,
  TPM_RH_ENDORSEMENT,
  parseCreatePrimaryRsa2,
  tpmCommand,
} from '../../src/protocol/tpm/commands.js';

// The TCG EK Credential Profile's default RSA 2048 template (template L-1): the key
// every TPM derives from its endorsement seed. Same seed = same modulus; a TPM that
// was manufactured anew has a different one.

const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const tpm2b = (b: Uint8Array) => Buffer.concat([u16(b.length), b]);

/** fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted, decrypt. */
const EK_ATTRS = 0x000300b2;
/** PolicySecret(TPM_RH_ENDORSEMENT) digest, SHA-256 (EK profile "PolicyA"). */
const EK_POLICY_A = Buffer.from(
  '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa',
  'hex',
);

/** TPM2_CreatePrimary(TPM_RH_ENDORSEMENT) of the default RSA EK template, empty auth. */
export function createEkRsa2(): Buffer {
  const publicArea = Buffer.concat([
    u16(0x0001), // TPM_ALG_RSA
    u16(0x000b), // SHA-256
    u32(EK_ATTRS),
    tpm2b(EK_POLICY_A),
    u16(0x0006), // AES
    u16(128),
    u16(0x0043), // CFB
    u16(0x0010), // scheme NULL
    u16(2048),
    u32(0), // exponent 65537
    tpm2b(Buffer.alloc(256)), // unique: 256 zero bytes
  ]);
  const pw = Buffer.concat([u32(0x40000009), u16(0), Buffer.from([0]), u16(0)]);
  return tpmCommand(
    0x8002,
    TPM2_CC.CreatePrimary,
    u32(TPM_RH_ENDORSEMENT),
    u32(pw.length),
    pw,
    tpm2b(Buffer.concat([u16(0), u16(0)])),
    tpm2b(publicArea),
    tpm2b(Buffer.alloc(0)),
    u32(0),
  );
}

/** The EK modulus (hex) of the TPM listening on `port` (started with startup-clear). */
export async function ekModulus(port: number): Promise<string> {
  const tpm = new TpmClient({ port }, { timeoutMs: 60000 });
  try {
    for (;;) {
      const rsp = await tpm.transmit(createEkRsa2());
      if (rsp.readUInt32BE(6) === 0x922) continue; // TPM_RC_RETRY
      return parseCreatePrimaryRsa2(rsp).modulus.toString('hex');
    }
  } finally {
    await tpm.close();
  }
}

/** TPM2_NV_ReadPublic(index): TPM_RC_HANDLE (0x18b) when the index is not defined. */
export const nvReadPublic = (index: number): Buffer => tpmCommand(0x8001, 0x169, u32(index)); // TPM2_CC_NV_ReadPublic
