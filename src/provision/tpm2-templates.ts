/**
 * The EK and SPK templates swtpm_setup sends (provisioning.md §2.3), their persistent
 * handles and NV indices, and where CreatePrimary's response carries the public key.
 */
import { Bytes, TpmResponseError } from './tpm2-cmds.js';

const TPM_ALG_RSA = 0x0001;
const TPM_ALG_SHA256 = 0x000b;
const TPM_ALG_SHA384 = 0x000c;
const TPM_ALG_AES = 0x0006;
const TPM_ALG_CFB = 0x0043;
const TPM_ALG_NULL = 0x0010;
const TPM_ALG_ECC = 0x0023;
const TPM_ECC_NIST_P384 = 0x0004;

/** TPMA_OBJECT bits swtpm_setup uses. */
export const TPMA_OBJECT = {
  fixedTPM: 0x2,
  fixedParent: 0x10,
  sensitiveDataOrigin: 0x20,
  userWithAuth: 0x40,
  adminWithPolicy: 0x80,
  noDA: 0x400,
  restricted: 0x10000,
  decrypt: 0x20000,
  sign: 0x40000,
} as const;

/** TCG EK credential profile PolicyA (SHA-256) and PolicyB (SHA-384). */
const POLICY_A_SHA256 = Buffer.from(
  '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa',
  'hex',
);
const POLICY_B_SHA384 = Buffer.from(
  'b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12',
  'hex',
);

export type EkKind = 'rsa2048' | 'rsa3072' | 'secp384r1';

/** What one EK pass needs: template, handle, NV indices and the names used in logs. */
export interface EkProfile {
  readonly kind: EkKind;
  readonly template: Buffer;
  /** Length of the `unique` field at the end of the template (with its size prefixes). */
  readonly uniqueLen: number;
  readonly persistentHandle: number;
  readonly certIndex: number;
  readonly templateIndex: number;
  /** `RSA 2048`, `RSA 3072`, `ECC`: the log lines' name. */
  readonly logName: string;
}

export interface EkFlags {
  readonly allowSigning: boolean;
  readonly decryption: boolean;
}

/** Attributes: restricted+decrypt by default; sign (and decrypt) with --allow-signing. */
function ekAttributes(base: number, f: EkFlags): number {
  const { restricted, decrypt, sign } = TPMA_OBJECT;
  if (!f.allowSigning) return base | restricted | decrypt;
  return base | sign | (f.decryption ? decrypt : 0);
}

/** TPMT_SYM_DEF_OBJECT: AES-CFB, or just NULL for a signing EK. */
function symmetric(b: Bytes, bits: number, f: EkFlags): Bytes {
  return f.allowSigning ? b.u16(TPM_ALG_NULL) : b.u16(TPM_ALG_AES).u16(bits).u16(TPM_ALG_CFB);
}

const EK_BASE_LOW =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.adminWithPolicy;
const EK_BASE_HIGH = EK_BASE_LOW | TPMA_OBJECT.userWithAuth;

/** The RSA EK: 2048 is the TCG low-range template L-1, 3072 the high-range H-6. */
export function rsaEk(bits: 2048 | 3072, f: EkFlags): EkProfile {
  const low = bits === 2048;
  const b = new Bytes()
    .u16(TPM_ALG_RSA)
    .u16(low ? TPM_ALG_SHA256 : TPM_ALG_SHA384)
    .u32(ekAttributes(low ? EK_BASE_LOW : EK_BASE_HIGH, f))
    .sized(low ? POLICY_A_SHA256 : POLICY_B_SHA384);
  symmetric(b, low ? 128 : 256, f)
    .u16(TPM_ALG_NULL)
    .u16(bits)
    .u32(0);
  const unique = low ? Buffer.alloc(256) : Buffer.alloc(0);
  return {
    kind: low ? 'rsa2048' : 'rsa3072',
    template: b.sized(unique).done(),
    uniqueLen: 2 + unique.length,
    persistentHandle: low ? 0x81010001 : 0x8101001c,
    certIndex: low ? 0x01c00002 : 0x01c0001c,
    templateIndex: low ? 0x01c00004 : 0x01c0001d,
    logName: `RSA ${bits}`,
  };
}

/** The ECC NIST P-384 EK: TCG high-range template H-3. */
export function eccEk(f: EkFlags): EkProfile {
  const b = new Bytes()
    .u16(TPM_ALG_ECC)
    .u16(TPM_ALG_SHA384)
    .u32(ekAttributes(EK_BASE_HIGH, f))
    .sized(POLICY_B_SHA384);
  symmetric(b, 256, f).u16(TPM_ALG_NULL).u16(TPM_ECC_NIST_P384).u16(TPM_ALG_NULL);
  return {
    kind: 'secp384r1',
    template: b.u16(0).u16(0).done(),
    uniqueLen: 4,
    persistentHandle: 0x81010016,
    certIndex: 0x01c00016,
    templateIndex: 0x01c00017,
    logName: 'ECC',
  };
}

export const SPK_HANDLE = 0x81000001;

/** The storage primary key (--create-spk): RSA of the EK's size, or ECC P-384 (--ecc). */
export function spkTemplate(ecc: boolean, rsaBits: 2048 | 3072): Buffer {
  const attrs =
    TPMA_OBJECT.fixedTPM |
    TPMA_OBJECT.fixedParent |
    TPMA_OBJECT.sensitiveDataOrigin |
    TPMA_OBJECT.userWithAuth |
    TPMA_OBJECT.noDA |
    TPMA_OBJECT.restricted |
    TPMA_OBJECT.decrypt;
  if (ecc) {
    return new Bytes()
      .u16(TPM_ALG_ECC)
      .u16(TPM_ALG_SHA384)
      .u32(attrs)
      .u16(0)
      .u16(TPM_ALG_AES)
      .u16(256)
      .u16(TPM_ALG_CFB)
      .u16(TPM_ALG_NULL)
      .u16(TPM_ECC_NIST_P384)
      .u16(TPM_ALG_NULL)
      .sized(Buffer.alloc(48))
      .sized(Buffer.alloc(48))
      .done();
  }
  const low = rsaBits === 2048;
  return new Bytes()
    .u16(TPM_ALG_RSA)
    .u16(low ? TPM_ALG_SHA256 : TPM_ALG_SHA384)
    .u32(attrs)
    .u16(0)
    .u16(TPM_ALG_AES)
    .u16(low ? 128 : 256)
    .u16(TPM_ALG_CFB)
    .u16(TPM_ALG_NULL)
    .u16(rsaBits)
    .u32(0)
    .sized(Buffer.alloc(rsaBits / 8))
    .done();
}

/**
 * The `--ek` parameter of the certificate tool, read from a CreatePrimary response at
 * the fixed offset swtpm_setup uses: header 10 + handle 4 + paramSize 4 + TPM2B_PUBLIC
 * size 2 + the template up to its unique field. RSA: the modulus in lower-case hex;
 * ECC: `x=<hex>,y=<hex>,id=secp384r1`.
 */
export function ekParamFromResponse(ek: EkProfile, rsp: Buffer): string {
  const off = 20 + ek.template.length - ek.uniqueLen;
  if (ek.kind === 'secp384r1') {
    const x = readSized(rsp, off, 48);
    const y = readSized(rsp, off + 2 + 48, 48);
    return `x=${x.toString('hex')},y=${y.toString('hex')},id=secp384r1`;
  }
  const bytes = ek.kind === 'rsa2048' ? 256 : 384;
  return readSized(rsp, off, bytes).toString('hex');
}

function readSized(rsp: Buffer, off: number, want: number): Buffer {
  if (rsp.length < off + 2 + want || rsp.readUInt16BE(off) !== want) {
    throw new TpmResponseError(`Unexpected public key size in response (want ${want})`);
  }
  return rsp.subarray(off + 2, off + 2 + want);
}
