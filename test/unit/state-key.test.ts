import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  StateBlobError,
  TPM_BAD_KEY_PROPERTY,
  TPM_BAD_MODE,
  deriveKeyFromPassword,
  keyLength,
  parseEncryptionMode,
  parseKeyDerivation,
  parseKeyFile,
  parseKeyFormat,
} from '../../src/protocol/state/index.js';
import { fixture, toHex } from '../fixtures/state/harness.js';

const enc = (s: string) => new TextEncoder().encode(s);
const K16 = '000102030405060708090a0b0c0d0e0f';
const K32 = `${K16}101112131415161718191a1b1c1d1e1f`;

function rejects(fn: () => unknown, code: string, result: number): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof StateBlobError && e.code === code && e.result === result,
  );
}

describe('encryption modes', () => {
  it('maps aes-cbc to aes-128-cbc', () => {
    assert.equal(parseEncryptionMode('aes-cbc'), 'aes-128-cbc');
    assert.equal(parseEncryptionMode('aes-128-cbc'), 'aes-128-cbc');
    assert.equal(parseEncryptionMode('aes-256-cbc'), 'aes-256-cbc');
    assert.equal(keyLength('aes-128-cbc'), 16);
    assert.equal(keyLength('aes-256-cbc'), 32);
  });

  it('rejects unknown modes with TPM_BAD_MODE', () => {
    rejects(() => parseEncryptionMode('aes-192-cbc'), 'BAD_MODE', TPM_BAD_MODE);
    rejects(() => parseEncryptionMode('AES-CBC'), 'BAD_MODE', TPM_BAD_MODE);
    rejects(() => parseKeyDerivation('scrypt'), 'BAD_KDF', TPM_BAD_MODE);
    assert.equal(parseKeyDerivation('sha512'), 'sha512');
    assert.equal(parseKeyFormat('binary'), 'binary');
  });
});

describe('key files', () => {
  it('reads the hex key files used with Debian swtpm', () => {
    // '0x' + 32 digits + '\n'
    assert.equal(toHex(parseKeyFile(fixture('key128.hex'), 'hex', 'aes-128-cbc')), K16);
    // 64 digits, no newline
    assert.equal(toHex(parseKeyFile(fixture('key256.hex'), 'hex', 'aes-256-cbc')), K32);
    // 32 digits terminated by a space, then junk
    assert.equal(
      toHex(parseKeyFile(fixture('migkey128.hex'), 'hex', 'aes-128-cbc')),
      'fedcba9876543210fedcba9876543210',
    );
  });

  it('accepts upper case digits and any whitespace terminator', () => {
    const k = parseKeyFile(enc(`${K16.toUpperCase()}\tjunk`), 'hex', 'aes-128-cbc');
    assert.equal(toHex(k), K16);
  });

  it('rejects a key whose size does not match the mode', () => {
    rejects(() => parseKeyFile(enc(K16), 'hex', 'aes-256-cbc'), 'BAD_KEY', TPM_BAD_KEY_PROPERTY);
    rejects(() => parseKeyFile(enc(K32), 'hex', 'aes-128-cbc'), 'BAD_KEY', TPM_BAD_KEY_PROPERTY);
    rejects(() => parseKeyFile(enc(`${K16}0`), 'hex', 'aes-128-cbc'), 'BAD_KEY', 0x28);
    rejects(() => parseKeyFile(enc(''), 'hex', 'aes-128-cbc'), 'BAD_KEY', 0x28);
  });

  it('rejects non-hex characters', () => {
    rejects(() => parseKeyFile(enc(`${K16.slice(0, 31)}g`), 'hex', 'aes-128-cbc'), 'BAD_KEY', 0x28);
    rejects(() => parseKeyFile(enc(`0X${K16}`), 'hex', 'aes-128-cbc'), 'BAD_KEY', 0x28);
  });

  it('reads binary keys of exactly the key length', () => {
    const bin = fixture('key128.bin');
    assert.equal(toHex(parseKeyFile(bin, 'binary', 'aes-128-cbc')), toHex(bin));
    rejects(() => parseKeyFile(bin, 'binary', 'aes-256-cbc'), 'BAD_KEY', 0x28);
    rejects(() => parseKeyFile(bin.subarray(0, 15), 'binary', 'aes-128-cbc'), 'BAD_KEY', 0x28);
  });
});

describe('password key derivation', () => {
  const pwd = enc('correct horse battery staple');

  it('pbkdf2: PBKDF2-HMAC-SHA512, salt "swtpm", 1000 iterations', () => {
    // Reference value from Python hashlib.pbkdf2_hmac('sha512', pwd, b'swtpm', 1000, 32);
    // the interop fixtures (pbkdf2-256.*) prove Debian swtpm derives the same key.
    const k = deriveKeyFromPassword(pwd, 'pbkdf2', 'aes-256-cbc');
    assert.equal(toHex(k), '91b5acb48c033c4853b07407e773d9cd276a278442e2de1dd827b60c16902ee6');
    const k16 = deriveKeyFromPassword(pwd, 'pbkdf2', 'aes-128-cbc');
    assert.deepEqual(k16, k.subarray(0, 16));
  });

  it('sha512: the first key-length bytes of SHA-512(password)', () => {
    const k = deriveKeyFromPassword(pwd, 'sha512', 'aes-128-cbc');
    // Python hashlib.sha512(pwd).digest()[:16]
    assert.equal(toHex(k), 'be5ef7679d88ab9a9045f6267e55f5e5');
    const k32 = deriveKeyFromPassword(pwd, 'sha512', 'aes-256-cbc');
    assert.equal(toHex(k32), 'be5ef7679d88ab9a9045f6267e55f5e5784b4b8cd764b5cd855a5244f91c6269');
  });
});
