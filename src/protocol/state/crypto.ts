import {
  AES128_KEY_SIZE,
  AES256_KEY_SIZE,
  AES_BLOCK_SIZE,
  SHA256_DIGEST_SIZE,
  TAG_HMAC,
} from './constants.js';
import { StateBlobError, TPM_BAD_KEY_PROPERTY, TPM_DECRYPT_ERROR, TPM_FAIL } from './errors.js';
import { nodeCrypto } from './node-crypto.js';
import { type Tlv, findTlv } from './tlv.js';

function cipherName(key: Uint8Array): 'aes-128-cbc' | 'aes-256-cbc' {
  if (key.length === AES128_KEY_SIZE) return 'aes-128-cbc';
  if (key.length === AES256_KEY_SIZE) return 'aes-256-cbc';
  throw new StateBlobError(
    'WRONG_KEY_SIZE',
    TPM_BAD_KEY_PROPERTY,
    `AES key must be 16 or 32 bytes, got ${key.length}`,
  );
}

/** swtpm stores an IV as long as the key; only its first 16 bytes feed AES-CBC. */
function cbcIv(iv: Uint8Array | undefined): Uint8Array {
  return iv === undefined ? new Uint8Array(AES_BLOCK_SIZE) : iv.subarray(0, AES_BLOCK_SIZE);
}

/**
 * AES-CBC as swtpm does it: pads to a multiple of the *key* length (16 or 32) with
 * bytes equal to the pad length (1…keylen). `iv` undefined = all-zero IV.
 *
 * @example swtpmAesEncrypt(key16, plain, iv16).length % 16 === 0
 */
export function swtpmAesEncrypt(key: Uint8Array, plain: Uint8Array, iv?: Uint8Array): Uint8Array {
  const pad = key.length - (plain.length % key.length);
  const padded = new Uint8Array(plain.length + pad);
  padded.set(plain);
  padded.fill(pad, plain.length);
  const c = nodeCrypto().createCipheriv(cipherName(key), key, cbcIv(iv));
  c.setAutoPadding(false);
  return concat(c.update(padded), c.final());
}

/** Inverse of swtpmAesEncrypt; every pad byte is checked (TPM_DECRYPT_ERROR). */
export function swtpmAesDecrypt(key: Uint8Array, ct: Uint8Array, iv?: Uint8Array): Uint8Array {
  if (ct.length === 0 || ct.length % AES_BLOCK_SIZE !== 0) {
    throw new StateBlobError(
      'BAD_CIPHERTEXT_LENGTH',
      TPM_DECRYPT_ERROR,
      `encrypted state of ${ct.length} bytes is not a whole number of AES blocks`,
    );
  }
  const d = nodeCrypto().createDecipheriv(cipherName(key), key, cbcIv(iv));
  d.setAutoPadding(false);
  const out = concat(d.update(ct), d.final());
  const pad = out[out.length - 1] ?? 0;
  let ok = pad >= 1 && pad <= key.length && pad <= out.length;
  for (let i = out.length - pad; ok && i < out.length; i++) ok = out[i] === pad;
  if (!ok) {
    throw new StateBlobError(
      'BAD_PADDING',
      TPM_DECRYPT_ERROR,
      'decrypted state has invalid padding (wrong key?)',
    );
  }
  return out.subarray(0, out.length - pad);
}

function hmac(key: Uint8Array, ct: Uint8Array, iv: Uint8Array | undefined): Uint8Array {
  const h = nodeCrypto().createHmac('sha256', key).update(ct);
  if (iv !== undefined) h.update(iv);
  return h.digest();
}

/**
 * Encrypts `plain` into the three TLVs swtpm writes: tagData(ciphertext),
 * HMAC(HMAC-SHA256(key, ciphertext ‖ iv)), tagIv(iv). The IV is random and as long as
 * the key.
 *
 * @example encryptToTlvs(key, plain, TAG_ENCRYPTED_DATA, TAG_IVEC_ENCRYPTED_DATA)
 */
export function encryptToTlvs(
  key: Uint8Array,
  plain: Uint8Array,
  tagData: number,
  tagIv: number,
  iv: Uint8Array = nodeCrypto().randomBytes(key.length),
): Tlv[] {
  const ct = swtpmAesEncrypt(key, plain, iv);
  return [
    { tag: tagData, value: ct },
    { tag: TAG_HMAC, value: hmac(key, ct, iv) },
    { tag: tagIv, value: iv },
  ];
}

/**
 * Header flag `flag256` says whether the blob was encrypted with a 256-bit key; the
 * configured key must have that size (swtpm: "Wrong decryption key", TPM_BAD_KEY_PROPERTY).
 */
export function checkKeySize(key: Uint8Array, flags: number, flag256: number, what: string): void {
  const want = (flags & flag256) !== 0 ? AES256_KEY_SIZE : AES128_KEY_SIZE;
  if (key.length !== want) {
    throw new StateBlobError(
      'WRONG_KEY_SIZE',
      TPM_BAD_KEY_PROPERTY,
      `${what} was encrypted with a ${want * 8}-bit key but the key has ${key.length * 8} bits`,
    );
  }
}

/**
 * Version-2 decryption: finds tagData, HMAC and (optional) tagIv among the TLVs,
 * verifies the HMAC before decrypting. A missing IV TLV means an all-zero IV and an
 * HMAC over the ciphertext alone (older swtpm); an IV whose length differs from the
 * key's is rejected like swtpm 0.7.1 does.
 */
export function decryptFromTlvs(
  key: Uint8Array,
  body: Uint8Array,
  tagData: number,
  tagIv: number,
  what: string,
): Uint8Array {
  const ct = findTlv(body, tagData);
  const mac = findTlv(body, TAG_HMAC);
  if (ct === undefined || mac === undefined) {
    throw new StateBlobError(
      'MISSING_TAG',
      TPM_FAIL,
      `${what}: could not find HMAC or encrypted data (tag ${tagData})`,
    );
  }
  const iv = findTlv(body, tagIv);
  if (mac.length < SHA256_DIGEST_SIZE) {
    throw new StateBlobError('HMAC_MISMATCH', TPM_FAIL, `${what}: HMAC is too short`);
  }
  if (!nodeCrypto().timingSafeEqual(mac.subarray(0, SHA256_DIGEST_SIZE), hmac(key, ct, iv))) {
    throw new StateBlobError(
      'HMAC_MISMATCH',
      TPM_DECRYPT_ERROR,
      `${what}: HMAC verification failed (wrong key or corrupted data)`,
    );
  }
  if (iv !== undefined && iv.length !== key.length) {
    throw new StateBlobError(
      'BAD_IV_LENGTH',
      TPM_DECRYPT_ERROR,
      `${what}: IV is ${iv.length} bytes, expected ${key.length}`,
    );
  }
  return swtpmAesDecrypt(key, ct, iv);
}

/** Version-1 (legacy) encryption: AES-CBC, zero IV, over SHA-256(plain) ‖ plain. */
export function legacyEncrypt(key: Uint8Array, plain: Uint8Array): Uint8Array {
  const digest = nodeCrypto().createHash('sha256').update(plain).digest();
  return swtpmAesEncrypt(key, concat(digest, plain));
}

/** Inverse of legacyEncrypt; a digest mismatch is TPM_DECRYPT_ERROR. */
export function legacyDecrypt(key: Uint8Array, data: Uint8Array, what: string): Uint8Array {
  const out = swtpmAesDecrypt(key, data);
  const digest = nodeCrypto()
    .createHash('sha256')
    .update(out.subarray(SHA256_DIGEST_SIZE))
    .digest();
  if (
    out.length < SHA256_DIGEST_SIZE ||
    !nodeCrypto().timingSafeEqual(digest, out.subarray(0, 32))
  ) {
    throw new StateBlobError(
      'HASH_MISMATCH',
      TPM_DECRYPT_ERROR,
      `${what}: hash of the decrypted legacy blob does not match (wrong key?)`,
    );
  }
  return out.subarray(SHA256_DIGEST_SIZE);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
