import { AES128_KEY_SIZE, AES256_KEY_SIZE } from './constants.js';
import { StateBlobError, TPM_BAD_KEY_PROPERTY, TPM_BAD_MODE } from './errors.js';
import { nodeCrypto } from './node-crypto.js';

/** `mode=` of `--key` / `--migration-key`; `aes-cbc` is an alias of aes-128-cbc. */
export type EncryptionMode = 'aes-128-cbc' | 'aes-256-cbc';
export type KeyFormat = 'hex' | 'binary';
export type KeyDerivation = 'pbkdf2' | 'sha512';

/** swtpm's default `--key` mode. */
export const DEFAULT_ENCRYPTION_MODE: EncryptionMode = 'aes-128-cbc';

/**
 * Parses a `mode=` value; anything else is TPM_BAD_MODE.
 *
 * @example parseEncryptionMode('aes-cbc') // 'aes-128-cbc'
 */
export function parseEncryptionMode(text: string): EncryptionMode {
  if (text === 'aes-cbc' || text === 'aes-128-cbc') return 'aes-128-cbc';
  if (text === 'aes-256-cbc') return 'aes-256-cbc';
  throw new StateBlobError('BAD_MODE', TPM_BAD_MODE, `unknown encryption mode '${text}'`);
}

/** Key length in bytes for a mode (16 or 32). */
export function keyLength(mode: EncryptionMode): number {
  return mode === 'aes-256-cbc' ? AES256_KEY_SIZE : AES128_KEY_SIZE;
}

function isSpace(c: number): boolean {
  // C isspace(): space, \t \n \v \f \r
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/**
 * Parses the contents of a key file (`--key file=` / `fd=`). Hex: optional `0x`, then
 * exactly 2×keylen hex digits, ending at the end of the file or at whitespace. Binary:
 * the raw bytes (swtpm reads at most 32), which must be exactly keylen long.
 *
 * @example parseKeyFile(Buffer.from('0x00112233445566778899aabbccddeeff\n'), 'hex', 'aes-128-cbc')
 */
export function parseKeyFile(
  content: Uint8Array,
  format: KeyFormat,
  mode: EncryptionMode,
): Uint8Array {
  const want = keyLength(mode);
  if (format === 'binary') {
    const key = content.subarray(0, AES256_KEY_SIZE);
    if (key.length !== want) {
      throw badKey(`binary key is ${key.length} bytes, mode ${mode} needs ${want}`);
    }
    return Uint8Array.from(key);
  }
  let i = content[0] === 0x30 && content[1] === 0x78 ? 2 : 0;
  const digits: number[] = [];
  for (; i < content.length; i++) {
    const c = content[i] ?? 0;
    if (isSpace(c)) break;
    const v = hexValue(c);
    if (v < 0) throw badKey(`key file contains a non-hex character at offset ${i}`);
    digits.push(v);
  }
  if (digits.length !== want * 2) {
    throw badKey(`hex key has ${digits.length} digits, mode ${mode} needs ${want * 2}`);
  }
  const key = new Uint8Array(want);
  for (let j = 0; j < want; j++) key[j] = ((digits[2 * j] ?? 0) << 4) | (digits[2 * j + 1] ?? 0);
  return key;
}

/**
 * Derives a key from a password file's whole content (`pwdfile=` / `pwdfd=`; no
 * newline stripping): pbkdf2 = PBKDF2-HMAC-SHA512(salt "swtpm", 1000 iterations),
 * sha512 = the first keylen bytes of SHA-512(password).
 *
 * @example deriveKeyFromPassword(Buffer.from('secret'), 'pbkdf2', 'aes-256-cbc').length // 32
 */
export function deriveKeyFromPassword(
  password: Uint8Array,
  kdf: KeyDerivation,
  mode: EncryptionMode,
): Uint8Array {
  const len = keyLength(mode);
  if (kdf === 'sha512') {
    return Uint8Array.from(
      nodeCrypto().createHash('sha512').update(password).digest().subarray(0, len),
    );
  }
  return Uint8Array.from(nodeCrypto().pbkdf2Sync(password, 'swtpm', 1000, len, 'sha512'));
}

/** Parses `kdf=`. */
export function parseKeyDerivation(text: string): KeyDerivation {
  if (text === 'pbkdf2' || text === 'sha512') return text;
  throw new StateBlobError('BAD_KDF', TPM_BAD_MODE, `unknown key derivation function '${text}'`);
}

/** Parses `format=`. */
export function parseKeyFormat(text: string): KeyFormat {
  if (text === 'hex' || text === 'binary') return text;
  throw badKey(`unknown key format '${text}'`);
}

function badKey(message: string): StateBlobError {
  return new StateBlobError('BAD_KEY', TPM_BAD_KEY_PROPERTY, message);
}
