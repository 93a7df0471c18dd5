import assert from 'node:assert/strict';
import { createCipheriv, createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  StateBlobError,
  checkBlobHeader,
  decodeMigrationBlob,
  decodeStateFile,
  decodeTlvs,
  deriveKeyFromPassword,
  encodeBlob,
  encodeMigrationBlob,
  encodeStateFile,
  encodeTlvs,
  legacyEncrypt,
  parseKeyFile,
} from '../../src/protocol/state/index.js';
import { fixture, toHex } from '../fixtures/state/harness.js';

const k128 = parseKeyFile(fixture('key128.hex'), 'hex', 'aes-128-cbc');
const k256 = parseKeyFile(fixture('key256.hex'), 'hex', 'aes-256-cbc');
const kbin = parseKeyFile(fixture('key128.bin'), 'binary', 'aes-128-cbc');
const pwd = fixture('password.txt');

/** Debian swtpm 0.7.1 runs (see generate.sh): file key and migration key of each. */
const RUNS: Record<string, { file?: Uint8Array; mig?: Uint8Array; flags: number }> = {
  plain: { flags: 0x00 },
  aes128: { file: k128, flags: 0x01 },
  aes256: { file: k256, flags: 0x09 },
  aes128bin: { file: kbin, flags: 0x01 },
  'pbkdf2-256': { file: deriveKeyFromPassword(pwd, 'pbkdf2', 'aes-256-cbc'), flags: 0x09 },
  'sha512-128': { file: deriveKeyFromPassword(pwd, 'sha512', 'aes-128-cbc'), flags: 0x01 },
  mig256: { mig: k256, flags: 0x00 },
  'aes128-mig256': { file: k128, mig: k256, flags: 0x01 },
};

const magic = (b: Uint8Array) => toHex(b.subarray(2, 6));
const PERMALL_MAGIC = 'ab364723';
const VOLATILE_MAGIC = '45637889';

function rejects(fn: () => unknown, code: string, result: number): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StateBlobError, String(e));
    assert.equal(`${e.code}/${e.result}`, `${code}/${result}`);
    return true;
  });
}

function flip(b: Uint8Array, at: number): Uint8Array {
  const c = Uint8Array.from(b);
  c[at] = (c[at] ?? 0) ^ 0x01;
  return c;
}

describe('state files written by Debian swtpm', () => {
  for (const [run, { file, mig, flags }] of Object.entries(RUNS)) {
    it(`${run}: decodes permall and volatilestate, the migration blob matches`, () => {
      const permall = fixture(`${run}.permall`);
      assert.equal(checkBlobHeader(permall).flags, flags);
      const p = decodeStateFile(permall, file);
      assert.equal(magic(p.plain), PERMALL_MAGIC);
      assert.equal(p.version, 2);
      if (run !== 'aes128-mig256') {
        // 0.7.1 cannot store volatile state with a 128-bit file key and a 256-bit
        // migration key ("IV is 32 bytes, but expected 16 bytes")
        const v = decodeStateFile(fixture(`${run}.volatilestate`), file);
        assert.equal(magic(v.plain), VOLATILE_MAGIC);
      }
      // swtpm_ioctl --save asks for DECRYPTED: the permanent blob is the same state
      const m = decodeMigrationBlob(fixture(`${run}.mig-permanent.bin`), {
        fileKey: file,
        migrationKey: mig,
      });
      assert.deepEqual(m, p.plain);
      if (run !== 'aes128-mig256') {
        const mv = decodeMigrationBlob(fixture(`${run}.mig-volatile.bin`), {
          fileKey: file,
          migrationKey: mig,
        });
        assert.equal(magic(mv), VOLATILE_MAGIC);
      }
    });

    it(`${run}: re-encodes to the same layout`, () => {
      const permall = fixture(`${run}.permall`);
      const { plain } = decodeStateFile(permall, file);
      const again = encodeStateFile(plain, file);
      if (file === undefined) assert.deepEqual(again, permall);
      assert.equal(again.length, permall.length);
      assert.equal(checkBlobHeader(again).flags, flags);
      const tags = (b: Uint8Array) =>
        decodeTlvs(b.subarray(10))?.map((t) => `${t.tag}/${t.value.length}`);
      assert.deepEqual(tags(again), tags(permall));
      assert.deepEqual(decodeStateFile(again, file).plain, plain);
    });
  }

  it('encodes migration blobs byte-identical to swtpm without a migration key', () => {
    const { plain } = decodeStateFile(fixture('plain.permall'));
    const { blob, encrypted } = encodeMigrationBlob(plain, { decrypted: true });
    assert.deepEqual(blob, fixture('plain.mig-permanent.bin'));
    assert.equal(encrypted, false);
  });

  it('builds the layouts swtpm builds with a migration key', () => {
    const { plain } = decodeStateFile(fixture('aes128-mig256.permall'), k128);
    const opts = { fileKey: k128, migrationKey: k256 };
    const dec = encodeMigrationBlob(plain, { ...opts, decrypted: true });
    const debian = fixture('aes128-mig256.mig-permanent.bin');
    assert.equal(dec.blob.length, debian.length);
    assert.equal(toHex(dec.blob.subarray(0, 6)), toHex(debian.subarray(0, 6))); // flags 0x16
    // Not DECRYPTED: still file-key encrypted inside, flags 0x17 (spec §6.3)
    const enc = encodeMigrationBlob(plain, { ...opts, decrypted: false });
    assert.equal(enc.encrypted, true);
    assert.equal(checkBlobHeader(enc.blob).flags, 0x17);
    const outer = decodeTlvs(enc.blob.subarray(10))?.map((t) => `${t.tag}/${t.value.length}`);
    assert.deepEqual(outer, ['5/1408', '3/32', '7/32']);
    assert.deepEqual(decodeMigrationBlob(enc.blob, { ...opts, stateEncrypted: true }), plain);
    assert.deepEqual(decodeMigrationBlob(enc.blob, opts), plain); // header flag suffices
    rejects(() => decodeMigrationBlob(enc.blob, { migrationKey: k256 }), 'KEY_NOT_FOUND', 0x0d);
  });
});

describe('damaged and mismatched state files', () => {
  const aes = fixture('aes128.permall');
  const plainFile = fixture('plain.permall');

  it('wrong key → HMAC mismatch (0x21); flipped bytes too', () => {
    rejects(() => decodeStateFile(aes, kbin), 'HMAC_MISMATCH', 0x21);
    rejects(() => decodeStateFile(flip(aes, 100), k128), 'HMAC_MISMATCH', 0x21); // ciphertext
    rejects(() => decodeStateFile(flip(aes, aes.length - 20), k128), 'HMAC_MISMATCH', 0x21); // HMAC
    rejects(() => decodeStateFile(flip(aes, aes.length - 1), k128), 'HMAC_MISMATCH', 0x21); // IV
  });

  it('wrong key size → 0x28; missing key → 0x0d; key for a plain file → 0x09', () => {
    rejects(() => decodeStateFile(aes, k256), 'WRONG_KEY_SIZE', 0x28);
    rejects(() => decodeStateFile(fixture('aes256.permall'), k128), 'WRONG_KEY_SIZE', 0x28);
    rejects(() => decodeStateFile(aes), 'KEY_NOT_FOUND', 0x0d);
    rejects(() => decodeStateFile(plainFile, k128), 'MISSING_TAG', 0x09);
  });

  it('truncated or grown files fail the header check', () => {
    rejects(() => decodeStateFile(aes.subarray(0, aes.length - 1), k128), 'TOTLEN_MISMATCH', 3);
    rejects(() => decodeStateFile(plainFile.subarray(0, 500)), 'TOTLEN_MISMATCH', 3);
    rejects(() => decodeStateFile(plainFile.subarray(0, 5)), 'SHORT_HEADER', 3);
    const grown = new Uint8Array(plainFile.length + 1);
    grown.set(plainFile);
    rejects(() => decodeStateFile(grown), 'TOTLEN_MISMATCH', 3);
    rejects(() => decodeStateFile(flip(plainFile, 3)), 'BAD_HDRSIZE', 0x2b);
  });

  it('header-less files are legacy blobs, like swtpm loads them', () => {
    const raw = plainFile.subarray(16);
    const d = decodeStateFile(raw);
    assert.deepEqual(d.plain, raw);
    assert.equal(d.headerless, true);
    const v1 = encodeBlob(0, raw);
    v1[0] = 1;
    assert.deepEqual(decodeStateFile(v1).plain, raw);
    const v1enc = encodeBlob(1, legacyEncrypt(k128, raw));
    v1enc[0] = 1;
    assert.deepEqual(decodeStateFile(v1enc, k128).plain, raw);
    rejects(() => decodeStateFile(v1enc, kbin), 'BAD_PADDING', 0x21);
  });
});

describe('SET_STATEBLOB payloads (results observed with Debian swtpm_ioctl --load)', () => {
  const plainMig = fixture('plain.mig-permanent.bin');
  const m256 = fixture('mig256.mig-permanent.bin');
  const raw = fixture('plain.permall').subarray(16);
  const tlv = (tag: number, value: Uint8Array) => encodeTlvs([{ tag, value }]);
  const blob = (body: Uint8Array, flags = 0x04, version = 2) => {
    const b = encodeBlob(flags, body);
    b[0] = version;
    return b;
  };
  const inner = tlv(4, tlv(1, raw));
  const none = {};

  it('maps header and layout errors to the observed results', () => {
    rejects(() => decodeMigrationBlob(plainMig.subarray(0, 9), none), 'SHORT_HEADER', 0x03);
    rejects(() => decodeMigrationBlob(plainMig.subarray(0, 100), none), 'TOTLEN_MISMATCH', 0x03);
    rejects(() => decodeMigrationBlob(tlvFix(blob(inner), 3, 3), none), 'BAD_MIN_VERSION', 0x2e);
    rejects(() => decodeMigrationBlob(tlvFix(blob(inner), 1, 11), none), 'BAD_HDRSIZE', 0x2b);
    rejects(() => decodeMigrationBlob(blob(tlv(4, tlv(9, raw))), none), 'MISSING_TAG', 0x09);
    rejects(() => decodeMigrationBlob(blob(tlv(1, raw)), none), 'MISSING_TAG', 0x09);
    rejects(() => decodeMigrationBlob(m256, none), 'KEY_NOT_FOUND', 0x0d);
    rejects(() => decodeMigrationBlob(blob(inner, 0x05), none), 'KEY_NOT_FOUND', 0x0d);
    rejects(() => decodeMigrationBlob(blob(inner), { stateEncrypted: true }), 'KEY_NOT_FOUND', 13);
    rejects(() => decodeMigrationBlob(m256, { migrationKey: k128 }), 'WRONG_KEY_SIZE', 0x28);
    rejects(
      () => decodeMigrationBlob(flip(m256, 100), { migrationKey: k256 }),
      'HMAC_MISMATCH',
      33,
    );
    const noFlag = Uint8Array.from(m256);
    noFlag[5] = 0x06; // MIGRATION_256BIT_KEY cleared
    rejects(() => decodeMigrationBlob(noFlag, { migrationKey: k256 }), 'WRONG_KEY_SIZE', 0x28);
  });

  it('accepts what swtpm accepts', () => {
    assert.deepEqual(decodeMigrationBlob(plainMig, none), raw);
    // "upgrade": not migration-encrypted although a migration key is configured
    assert.deepEqual(decodeMigrationBlob(plainMig, { migrationKey: k256 }), raw);
    const m256plain = decodeStateFile(fixture('mig256.permall')).plain;
    assert.deepEqual(decodeMigrationBlob(m256, { migrationKey: k256 }), m256plain);
    const extra = blob(
      encodeTlvs([{ tag: 7, value: new Uint8Array(3) }, ...(decodeTlvs(inner) ?? [])]),
    );
    assert.deepEqual(decodeMigrationBlob(extra, none), raw);
    // version 1: data directly after the header
    assert.deepEqual(decodeMigrationBlob(blob(raw, 0, 1), none), raw);
    const v1 = blob(legacyEncrypt(k256, legacyEncrypt(k128, raw)), 0x07, 1);
    assert.deepEqual(decodeMigrationBlob(v1, { fileKey: k128, migrationKey: k256 }), raw);
  });

  it('clears state for empty, header-only and unknown-version blobs (0.7.1)', () => {
    assert.equal(decodeMigrationBlob(new Uint8Array(0), none).length, 0);
    assert.equal(decodeMigrationBlob(blob(new Uint8Array(0)), none).length, 0);
    assert.equal(decodeMigrationBlob(blob(inner, 0x04, 0), none).length, 0);
    assert.equal(decodeMigrationBlob(blob(inner, 0x04, 3), none).length, 0);
  });

  it('IV must be as long as the key; a missing IV means a zero IV', () => {
    const make = (iv: Uint8Array | undefined) => {
      const plain = tlv(1, raw);
      const pad = 32 - (plain.length % 32);
      const padded = Buffer.concat([plain, Buffer.alloc(pad, pad)]);
      const c = createCipheriv('aes-256-cbc', k256, (iv ?? Buffer.alloc(16)).subarray(0, 16));
      c.setAutoPadding(false);
      const ct = Buffer.concat([c.update(padded), c.final()]);
      const mac = createHmac('sha256', k256).update(ct);
      if (iv !== undefined) mac.update(iv);
      const t = [
        { tag: 5, value: ct },
        { tag: 3, value: mac.digest() },
      ];
      if (iv !== undefined) t.push({ tag: 7, value: Buffer.from(iv) });
      return blob(encodeTlvs(t), 0x16);
    };
    const mk = { migrationKey: k256 };
    assert.deepEqual(decodeMigrationBlob(make(undefined), mk), raw);
    assert.deepEqual(decodeMigrationBlob(make(new Uint8Array(32).fill(7)), mk), raw);
    rejects(() => decodeMigrationBlob(make(new Uint8Array(16)), mk), 'BAD_IV_LENGTH', 0x21);
    rejects(() => decodeMigrationBlob(make(new Uint8Array(48)), mk), 'BAD_IV_LENGTH', 0x21);
  });
});

/** Sets min_version and hdrsize of an encoded blob. */
function tlvFix(b: Uint8Array, minVersion: number, hdrSize: number): Uint8Array {
  const c = Uint8Array.from(b);
  c[1] = minVersion;
  c[3] = hdrSize;
  return c;
}
