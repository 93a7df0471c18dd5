import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BLOB_FLAG_MIGRATION_DATA,
  StateBlobError,
  TAG_DATA,
  TAG_HMAC,
  TAG_MIGRATION_DATA,
  TPM_BAD_DATASIZE,
  TPM_BAD_PARAMETER,
  TPM_BAD_VERSION,
  TPM_DECRYPT_ERROR,
  checkBlobHeader,
  decodeTlvs,
  encodeBlob,
  encodeTlvs,
  findTlv,
  legacyDecrypt,
  legacyEncrypt,
  swtpmAesDecrypt,
  swtpmAesEncrypt,
} from '../../src/protocol/state/index.js';
import { fixture, hex, toHex } from '../fixtures/state/harness.js';

function rejects(fn: () => unknown, code: string, result: number): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StateBlobError, String(e));
    assert.equal(e.code, code);
    assert.equal(e.result, result);
    return true;
  });
}

describe('blob header', () => {
  // Debian swtpm 0.7.1 tpm2-00.permall without key: 1315 bytes, flags 0, TLV DATA(1299)
  const permall = fixture('plain.permall');

  it('matches the header Debian swtpm writes', () => {
    assert.equal(toHex(permall.subarray(0, 16)), '0201000a000000000523000100000513');
    assert.deepEqual(checkBlobHeader(permall), {
      version: 2,
      minVersion: 1,
      hdrSize: 10,
      flags: 0,
      totlen: 1315,
    });
    const body = permall.subarray(10);
    assert.deepEqual(encodeBlob(0, body), permall);
  });

  it('encodes flags and totlen big-endian', () => {
    assert.equal(toHex(encodeBlob(0x17, hex('aabb'))), '0201000a00170000000caabb');
  });

  it('checks in swtpm order: size, totlen, min_version, hdrsize', () => {
    rejects(() => checkBlobHeader(hex('0201000a00000000')), 'SHORT_HEADER', TPM_BAD_PARAMETER);
    rejects(() => checkBlobHeader(hex('')), 'SHORT_HEADER', TPM_BAD_PARAMETER);
    rejects(
      () => checkBlobHeader(hex('0201000a000400000005')),
      'TOTLEN_MISMATCH',
      TPM_BAD_PARAMETER,
    );
    rejects(() => checkBlobHeader(permall.subarray(0, 1000)), 'TOTLEN_MISMATCH', 0x03);
    // min_version 3 and hdrsize 11: min_version wins (observed 0x2e)
    rejects(() => checkBlobHeader(hex('0203000b00040000000a')), 'BAD_MIN_VERSION', TPM_BAD_VERSION);
    rejects(() => checkBlobHeader(hex('0201000b00040000000a')), 'BAD_HDRSIZE', TPM_BAD_DATASIZE);
    rejects(() => checkBlobHeader(hex('02010009000400000000')), 'TOTLEN_MISMATCH', 0x03);
    rejects(() => checkBlobHeader(hex('0201000900040000000a')), 'BAD_HDRSIZE', TPM_BAD_DATASIZE);
  });

  it('does not check the version byte itself', () => {
    assert.equal(checkBlobHeader(hex('0301000a00000000000a')).version, 3);
    assert.equal(checkBlobHeader(hex('0101000a00000000000a')).version, 1);
  });
});

describe('TLV', () => {
  it('encodes tag BE16, length BE32, value', () => {
    const b = encodeTlvs([
      { tag: TAG_DATA, value: hex('0102') },
      { tag: TAG_HMAC, value: hex('') },
    ]);
    assert.equal(toHex(b), '0001000000020102000300000000');
  });

  it('finds tags in any order and skips unknown ones', () => {
    const b = hex('0063 00000001 ff  0003 00000002 aabb  0001 00000001 cc');
    assert.equal(toHex(findTlv(b, TAG_DATA) ?? hex('')), 'cc');
    assert.equal(toHex(findTlv(b, TAG_HMAC) ?? hex('')), 'aabb');
    assert.equal(findTlv(b, TAG_MIGRATION_DATA), undefined);
    assert.equal(decodeTlvs(b)?.length, 3);
  });

  it('stops at a TLV that does not fit, like swtpm', () => {
    const b = hex('0003 00000010 aabb  0001 00000001 cc');
    assert.equal(findTlv(b, TAG_DATA), undefined);
    assert.equal(decodeTlvs(b), undefined);
    assert.equal(findTlv(hex('0001 0000'), TAG_DATA), undefined);
    assert.equal(toHex(findTlv(hex('0001 00000000'), TAG_DATA) ?? hex('ff')), '');
  });

  it('parses the Debian permall body as one DATA TLV', () => {
    const tlvs = decodeTlvs(fixture('plain.permall').subarray(10)) ?? [];
    assert.deepEqual(
      tlvs.map((t) => [t.tag, t.value.length]),
      [[TAG_DATA, 1299]],
    );
    // libtpms TPM 2 permanent state: u16 version then magic 0xab364723
    assert.equal(toHex(tlvs[0]?.value.subarray(2, 6) ?? hex('')), 'ab364723');
  });

  it('parses a migration blob as MIGRATION_DATA(DATA(...))', () => {
    const mig = fixture('plain.mig-permanent.bin');
    assert.equal(checkBlobHeader(mig).flags, BLOB_FLAG_MIGRATION_DATA);
    const inner = findTlv(mig.subarray(10), TAG_MIGRATION_DATA) ?? hex('');
    assert.deepEqual(findTlv(inner, TAG_DATA), fixture('plain.permall').subarray(16));
  });
});

describe('swtpm AES-CBC', () => {
  const k16 = hex('000102030405060708090a0b0c0d0e0f');
  const k32 = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');

  it('pads to a multiple of the key length with pad-length bytes', () => {
    // 15 bytes + one pad byte 0x01
    const ct = swtpmAesEncrypt(k16, new Uint8Array(15));
    assert.equal(ct.length, 16);
    assert.equal(toHex(swtpmAesDecrypt(k16, ct)), '00'.repeat(15));
    assert.equal(swtpmAesEncrypt(k16, new Uint8Array(16)).length, 32);
    // 256-bit keys pad to 32: 1 byte → 32 bytes, 32 bytes → 64 bytes
    assert.equal(swtpmAesEncrypt(k32, new Uint8Array(1)).length, 32);
    assert.equal(swtpmAesEncrypt(k32, new Uint8Array(32)).length, 64);
    const padded = swtpmAesDecrypt(k32, swtpmAesEncrypt(k32, hex('0a0b')));
    assert.equal(toHex(padded), '0a0b');
  });

  it('uses only the first 16 bytes of a 32-byte IV', () => {
    const iv = hex(`${'11'.repeat(16)}${'22'.repeat(16)}`);
    const iv2 = hex(`${'11'.repeat(16)}${'33'.repeat(16)}`);
    assert.deepEqual(swtpmAesEncrypt(k32, hex('01'), iv), swtpmAesEncrypt(k32, hex('01'), iv2));
  });

  it('rejects bad padding and bad lengths with TPM_DECRYPT_ERROR', () => {
    const ct = swtpmAesEncrypt(k16, hex('01020304'));
    rejects(() => swtpmAesDecrypt(hex('ff'.repeat(16)), ct), 'BAD_PADDING', TPM_DECRYPT_ERROR);
    rejects(() => swtpmAesDecrypt(k16, ct.subarray(0, 15)), 'BAD_CIPHERTEXT_LENGTH', 0x21);
    rejects(() => swtpmAesDecrypt(k16, hex('')), 'BAD_CIPHERTEXT_LENGTH', 0x21);
  });

  it('legacy (v1) encryption carries a SHA-256 of the data', () => {
    const ct = legacyEncrypt(k16, hex('cafe'));
    assert.equal(ct.length, 48); // 32 digest + 2 data + 14 pad
    assert.equal(toHex(legacyDecrypt(k16, ct, 'x')), 'cafe');
    const flipped = Uint8Array.from(ct);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    rejects(() => legacyDecrypt(k16, flipped, 'x'), 'HASH_MISMATCH', TPM_DECRYPT_ERROR);
  });
});
