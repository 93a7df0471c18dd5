/**
 * TPM 1.2 ownership secrets as swtpm_setup computes them (provisioning.md §2.5), with
 * node:crypto: SHA-1 digests of the passwords, RSA-OAEP under the EK with the label
 * "TCPA", and the OIAP HMAC of TakeOwnership.
 */
import { constants, createHash, createHmac, createPublicKey, publicEncrypt } from 'node:crypto';

/** swtpm_setup's defaults when no password is given. */
export const DEFAULT_OWNER_PASSWORD = 'ooo';
export const DEFAULT_SRK_PASSWORD = 'sss';

/** The fixed nonceOdd swtpm_setup uses for TakeOwnership: 01..06, then 14 zero bytes. */
export const TAKE_OWNERSHIP_NONCE_ODD = Buffer.concat([
  Buffer.from([1, 2, 3, 4, 5, 6]),
  Buffer.alloc(14),
]);

const sha1 = (data: Uint8Array) => createHash('sha1').update(data).digest();

/**
 * The 20-byte secret for a password: SHA-1 of its bytes; without one, SHA-1 of 20 zero
 * bytes when `wellKnown` (swtpm_setup hashes the zeros), else SHA-1 of the default.
 */
export function passwordDigest(
  password: string | undefined,
  wellKnown: boolean,
  fallback: string,
): Buffer {
  if (password !== undefined) return sha1(Buffer.from(password, 'utf8'));
  return sha1(wellKnown ? Buffer.alloc(20) : Buffer.from(fallback, 'utf8'));
}

/** RSA-OAEP (SHA-1, MGF1-SHA-1, label "TCPA") under the EK: modulus, exponent 65537. */
export function encryptForEk(modulus: Uint8Array, secret: Uint8Array): Buffer {
  const key = createPublicKey({
    key: { kty: 'RSA', n: Buffer.from(modulus).toString('base64url'), e: 'AQAB' },
    format: 'jwk',
  });
  return publicEncrypt(
    {
      key,
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: 'sha1',
      oaepLabel: Buffer.from('TCPA'),
    },
    secret,
  );
}

/**
 * OIAP authorization of a command: HMAC-SHA1(key, SHA-1(inParams) ‖ nonceEven ‖
 * nonceOdd ‖ continueAuthSession), where inParams are the request bytes from the
 * ordinal (offset 6) to the end of the parameters.
 */
export function oiapAuth(
  key: Uint8Array,
  request: Uint8Array,
  nonceEven: Uint8Array,
  nonceOdd: Uint8Array,
  continueSession: number,
): Buffer {
  const paramDigest = sha1(request.subarray(6));
  return createHmac('sha1', key)
    .update(Buffer.concat([paramDigest, nonceEven, nonceOdd, Buffer.from([continueSession])]))
    .digest();
}
