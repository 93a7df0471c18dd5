/**
 * EK and platform certificates with swtpm_cert's profile (provisioning.md §5.2, §5.3):
 * the same fields, extensions, extension order, criticality and encodings, signed by the
 * local CA's key with @peculiar/x509 over WebCrypto.
 */
import 'reflect-metadata';
import { type KeyObject, webcrypto } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Name } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { subjectName } from './dn.js';
import type { EkKey } from './pubkey.js';
import {
  KeyUsageFlags,
  type PlatformAttrs,
  TCG_OID,
  type TpmAttrs,
  authorityKeyId,
  basicConstraints,
  ekSan,
  extKeyUsage,
  keyUsage,
  platformSan2,
  platformSan12,
  tpmSpecSda,
} from './tcg-asn.js';

const OID = {
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  subjectDirectoryAttributes: '2.5.29.9',
  authorityKeyIdentifier: '2.5.29.35',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
} as const;

/** `--tpm-spec-family/-level/-revision`. */
export interface TpmSpec {
  readonly family: string;
  readonly level: number;
  readonly revision: number;
}

/** The local CA as a signer: its certificate (the issuer) and its private key. */
export interface CaSigner {
  readonly cert: x509.X509Certificate;
  readonly key: KeyObject;
}

/** One certificate as swtpm_localca asks swtpm_cert for it. */
export interface CertInput {
  readonly type: 'ek' | 'platform';
  readonly tpm2: boolean;
  readonly ek: EkKey;
  readonly tpm: TpmAttrs;
  /** Required for `ek`. */
  readonly spec?: TpmSpec;
  /** Required for `platform`. */
  readonly platform?: PlatformAttrs;
  /** `--subject`: used for TPM 2 only (TPM 1.2 certificates have an empty subject). */
  readonly subject: string;
  readonly serial: bigint;
  /** Validity in days; negative = no expiry (99991231235959Z). */
  readonly days: number;
  readonly allowSigning?: boolean;
  readonly decryption?: boolean;
  readonly ca: CaSigner;
}

/** The 99991231235959Z "no well-defined expiration" date (RFC 5280 4.1.2.5). */
const NO_EXPIRY = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));

function keyUsageFlags(c: CertInput): number {
  const enc = c.ek.kind === 'ec' ? KeyUsageFlags.keyAgreement : KeyUsageFlags.keyEncipherment;
  if (!c.tpm2 || !c.allowSigning) return c.tpm2 ? enc : KeyUsageFlags.keyEncipherment;
  return KeyUsageFlags.digitalSignature | (c.decryption ? enc : 0);
}

/** The issuer's subjectKeyIdentifier, which swtpm_cert copies into every AKI. */
function issuerKeyId(cert: x509.X509Certificate): ArrayBuffer {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski === null) throw new Error('The issuer certificate has no subject key identifier.');
  return new Uint8Array(Buffer.from(ski.keyId, 'hex')).buffer;
}

/** The extensions in the order GnuTLS emits them for swtpm_cert (§5.3). */
function extensions(c: CertInput): x509.Extension[] {
  const ext = (oid: string, critical: boolean, v: ArrayBuffer) =>
    new x509.Extension(oid, critical, v);
  const aki = ext(OID.authorityKeyIdentifier, false, authorityKeyId(issuerKeyId(c.ca.cert)));
  const ku = ext(OID.keyUsage, true, keyUsage(keyUsageFlags(c)));
  const bc = ext(OID.basicConstraints, true, basicConstraints(false));
  if (c.type === 'platform') {
    const p = c.platform;
    if (p === undefined)
      throw new Error(
        '--platform-manufacturer and --platform-model and --platform version must all be provided',
      );
    const san = c.tpm2 ? platformSan2(p) : platformSan12(c.tpm, p);
    return [
      ext(OID.subjectAltName, true, san),
      bc,
      aki,
      ku,
      ext(OID.extKeyUsage, false, extKeyUsage(TCG_OID.tcg_kp_PlatformCertificate)),
    ];
  }
  const s = c.spec;
  if (s === undefined)
    throw new Error(
      '--tpm-spec-family and --tpm-spec-level and --tpm-spec-revision must all be provided',
    );
  return [
    ext(OID.extKeyUsage, false, extKeyUsage(TCG_OID.tcg_kp_EKCertificate)),
    ext(OID.subjectAltName, true, ekSan(c.tpm)),
    bc,
    ext(OID.subjectDirectoryAttributes, false, tpmSpecSda(s.family, s.level, s.revision)),
    aki,
    ku,
  ];
}

/** A minimal positive INTEGER's hex for a serial (a 0x80-led value gets a 00 byte). */
export function serialHex(n: bigint): string {
  if (n < 0n) throw new Error('negative serial number');
  let h = n.toString(16);
  if (h.length % 2) h = `0${h}`;
  return Number.parseInt(h.slice(0, 2), 16) & 0x80 ? `00${h}` : h;
}

/** Imports the CA key into WebCrypto for signing with `hash`. */
export async function signingKey(
  key: KeyObject,
  hash: 'SHA-1' | 'SHA-256',
): Promise<webcrypto.CryptoKey> {
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const alg =
    key.asymmetricKeyType === 'ec'
      ? { name: 'ECDSA', namedCurve: ecCurve(key) }
      : { name: 'RSASSA-PKCS1-v1_5', hash };
  return webcrypto.subtle.importKey('pkcs8', pkcs8, alg, false, [
    'sign',
  ]) as Promise<webcrypto.CryptoKey>;
}

function ecCurve(key: KeyObject): string {
  const c = key.asymmetricKeyDetails?.namedCurve;
  const map: Record<string, string> = {
    prime256v1: 'P-256',
    secp384r1: 'P-384',
    secp521r1: 'P-521',
  };
  const crv = c === undefined ? undefined : map[c];
  if (crv === undefined) throw new Error(`Unsupported signing key curve ${String(c)}`);
  return crv;
}

/** A seconds-precision Date (X.509 times carry no fractions). */
export const nowSeconds = (): Date => new Date(Math.floor(Date.now() / 1000) * 1000);

/**
 * Builds and signs one certificate; resolves with its DER.
 *
 * @example const der = await buildCertificate({ type: 'ek', tpm2: true, ... });
 */
export async function buildCertificate(c: CertInput): Promise<Uint8Array> {
  // TPM 2 certificates are signed with SHA-256, TPM 1.2 ones with SHA-1 (§5.2).
  const hash = c.tpm2 ? 'SHA-256' : 'SHA-1';
  const key = await signingKey(c.ca.key, hash);
  const notBefore = nowSeconds();
  const notAfter = c.days < 0 ? NO_EXPIRY : new Date(notBefore.getTime() + c.days * 86400_000);
  const spki = c.ek.key.export({ type: 'spki', format: 'der' });
  const subject = c.tpm2 ? subjectName(c.subject) : new Name();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex(c.serial),
    issuer: c.ca.cert.subjectName,
    subject: new x509.Name(AsnConvert.serialize(subject)),
    notBefore,
    notAfter,
    publicKey: new Uint8Array(spki),
    signingKey: key,
    signingAlgorithm: c.ca.key.asymmetricKeyType === 'ec' ? { name: 'ECDSA', hash } : { hash },
    extensions: extensions(c),
  });
  return new Uint8Array(cert.rawData);
}

/** TPM 1.2 NV header (§5.6): TCG_TAG_PCCLIENT_STORED_CERT, full cert, size, FULL_CERT tag. */
export function withTpm12Header(derCert: Uint8Array): Uint8Array {
  const out = Buffer.alloc(7 + derCert.length);
  out.writeUInt16BE(0x1001, 0); // TCG_TAG_PCCLIENT_STORED_CERT
  out.writeUInt8(0x00, 2); // TCG_FULL_CERT
  out.writeUInt16BE(derCert.length + 2, 3);
  out.writeUInt16BE(0x1002, 5); // TCG_TAG_PCCLIENT_FULL_CERT
  out.set(derCert, 7);
  return out;
}
