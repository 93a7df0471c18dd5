/**
 * swtpm state blobs (src/protocol/state/*): the header, the TLV stream and the
 * AES-CBC + HMAC layers, as read from a state file or a SET_STATEBLOB payload.
 * Properties: every decoder refuses only with StateBlobError (whose `result` is a TPM
 * result code); decodeTlvs/encodeTlvs round-trip and findTlv agrees with decodeTlvs;
 * what decodeStateFile / decodeMigrationBlob accept re-encodes and decodes to the same
 * plain blob; decryption with the key the fuzzer chose never yields a longer plain
 * text than the ciphertext.
 */
import {
  StateBlobError,
  type Tlv,
  checkBlobHeader,
  decodeMigrationBlob,
  decodeStateFile,
  decodeTlvs,
  encodeMigrationBlob,
  encodeStateFile,
  encodeTlvs,
  findTlv,
} from '../../../src/protocol/state/index.js';
import { assert, Input, only } from './props.js';

/** Fixed keys: the seed-* corpus files hold blobs encrypted with them. */
export const KEY128 = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
export const KEY256 = Buffer.from(
  '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  'hex',
);

function pickKey(sel: number): Buffer | undefined {
  return sel === 0 ? undefined : sel === 1 ? KEY128 : KEY256;
}

function checkTlvs(data: Uint8Array): void {
  const tlvs = decodeTlvs(data);
  if (tlvs === undefined) return;
  assert.deepEqual(Buffer.from(encodeTlvs(tlvs)), Buffer.from(data), 'TLV round trip');
  for (const tag of new Set(tlvs.map((t) => t.tag))) {
    const first: Tlv = tlvs.find((t) => t.tag === tag)!;
    assert.deepEqual(findTlv(data, tag), first.value, `findTlv(${tag})`);
  }
}

export function fuzz(data: Buffer): void {
  const inp = new Input(data);
  const sel = inp.u8();
  const blob = inp.rest();
  const fileKey = pickKey(sel % 3);
  const migrationKey = pickKey((sel >> 2) % 3);

  checkTlvs(blob);
  if (blob.length > 10) checkTlvs(blob.subarray(10));
  only('checkBlobHeader', () => checkBlobHeader(blob), StateBlobError);

  const file = only('decodeStateFile', () => decodeStateFile(blob, fileKey), StateBlobError);
  if (file !== undefined) {
    assert.ok(file.version === 1 || file.version === 2);
    assert.ok(file.plain.length <= blob.length);
    const again = decodeStateFile(encodeStateFile(file.plain, fileKey), fileKey);
    assert.deepEqual(Buffer.from(again.plain), Buffer.from(file.plain), 'state file round trip');
  }

  const stateEncrypted = (sel & 0x10) !== 0;
  const opts = { stateEncrypted, fileKey, migrationKey };
  const plain = only('decodeMigrationBlob', () => decodeMigrationBlob(blob, opts), StateBlobError);
  if (plain !== undefined && plain.length > 0) {
    assert.ok(plain.length <= blob.length);
    const enc = encodeMigrationBlob(plain, { decrypted: !stateEncrypted, fileKey, migrationKey });
    const back = decodeMigrationBlob(enc.blob, {
      stateEncrypted: enc.encrypted,
      fileKey,
      migrationKey,
    });
    assert.deepEqual(Buffer.from(back), Buffer.from(plain), 'migration blob round trip');
  }
}
