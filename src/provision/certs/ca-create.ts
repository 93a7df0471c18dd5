/**
 * Creating the local CA where swtpm_localca runs GnuTLS certtool (provisioning.md §4.5):
 * a root CA `CN=swtpm-localca-rootca` and the signing ("issuer") CA `CN=swtpm-localca` it
 * certifies, RSA 3072 keys, 20-byte random serials, validity to 99991231235959Z,
 * basicConstraints CA:TRUE and keyUsage keyCertSign (both critical) and a subjectKeyIdentifier
 * that is the SHA-1 of the DER SubjectPublicKeyInfo, as certtool makes it.
 */
import 'reflect-metadata';
import {
  type KeyObject,
  createHash,
  generateKeyPair as generateKeyPairCb,
  randomBytes,
} from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as x509 from '@peculiar/x509';
import { subjectName } from './dn.js';
import type { LocalCaConfig } from './localca.js';
import { nowSeconds, signingKey } from './profile.js';
import {
  KeyUsageFlags,
  authorityKeyId,
  basicConstraints,
  keyUsage,
  subjectKeyId,
} from './tcg-asn.js';

const generateKeyPair = promisify(generateKeyPairCb);

export const ROOTCA_KEY_NAME = 'swtpm-localca-rootca-privkey.pem';
export const ROOTCA_CERT_NAME = 'swtpm-localca-rootca-cert.pem';

const NO_EXPIRY = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));

/** certtool's default key size for RSA. */
const CA_RSA_BITS = 3072;

/**
 * A PEM private key as certtool writes it: PKCS#1 `RSA PRIVATE KEY` without a password,
 * PKCS#8 PBES2 (PBKDF2-HMAC-SHA256, AES-128-CBC) with one.
 */
export function keyPem(key: KeyObject, password: string | undefined): string {
  if (password === undefined || password === '')
    return key.export({ type: 'pkcs1', format: 'pem' }) as string;
  return key.export({
    type: 'pkcs8',
    format: 'pem',
    cipher: 'aes-128-cbc',
    passphrase: password,
  }) as string;
}

function randomSerialHex(): string {
  const b = randomBytes(20);
  b[0] = (b[0]! & 0x7f) | 0x01; // positive, and 20 bytes long as certtool's
  return b.toString('hex');
}

const ext = (oid: string, critical: boolean, v: ArrayBuffer) =>
  new x509.Extension(oid, critical, v);

const skiOf = (pub: KeyObject): ArrayBuffer => {
  const d = createHash('sha1')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest();
  return d.buffer.slice(d.byteOffset, d.byteOffset + d.length) as ArrayBuffer;
};

interface Made {
  key: KeyObject;
  pub: KeyObject;
  cert: x509.X509Certificate;
}

/** An RSA key pair made off the event loop (an in-process TPM keeps serving meanwhile). */
const rsaPair = () => generateKeyPair('rsa', { modulusLength: CA_RSA_BITS });

async function makeCaCert(
  cn: string,
  pair: { privateKey: KeyObject; publicKey: KeyObject },
  issuer: Made | undefined,
): Promise<Made> {
  const { privateKey: key, publicKey: pub } = pair;
  const ski = skiOf(pub);
  const name = new x509.Name(AsnConvert.serialize(subjectName(`CN=${cn}`)));
  const extensions = [
    ext('2.5.29.19', true, basicConstraints(true)),
    ext('2.5.29.15', true, keyUsage(KeyUsageFlags.keyCertSign)),
    ext('2.5.29.14', false, subjectKeyId(ski)),
  ];
  if (issuer) extensions.push(ext('2.5.29.35', false, authorityKeyId(skiOf(issuer.pub))));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: name,
    issuer: issuer ? issuer.cert.subjectName : name,
    notBefore: nowSeconds(),
    notAfter: NO_EXPIRY,
    publicKey: new Uint8Array(pub.export({ type: 'spki', format: 'der' })),
    signingKey: await signingKey((issuer ?? { key }).key, 'SHA-256'),
    signingAlgorithm: { hash: 'SHA-256' },
    extensions,
  });
  return { key, pub, cert };
}

/**
 * Creates the root and signing CA and writes the four files: keys 0640, certificates
 * 0644 (0666 & ~umask). Everything is generated before the first file is written, so a
 * failure leaves the directory as it was.
 */
export async function createCa(
  cfg: LocalCaConfig,
  rootPassword: string | undefined,
): Promise<void> {
  const [rootPair, localPair] = await Promise.all([rsaPair(), rsaPair()]);
  const root = await makeCaCert('swtpm-localca-rootca', rootPair, undefined);
  const local = await makeCaCert('swtpm-localca', localPair, root);
  const dir = dirname(cfg.signingkey);
  const rootKey = join(dir, ROOTCA_KEY_NAME);
  const writeKey = (path: string, pem: string) => {
    writeFileSync(path, pem, { mode: 0o640 });
    chmodSync(path, 0o640);
  };
  writeKey(rootKey, keyPem(root.key, rootPassword));
  writeFileSync(join(dir, ROOTCA_CERT_NAME), `${root.cert.toString('pem')}\n`, { mode: 0o666 });
  writeKey(cfg.signingkey, keyPem(local.key, cfg.signingkeyPassword));
  writeFileSync(cfg.issuercert, `${local.cert.toString('pem')}\n`, { mode: 0o666 });
}
