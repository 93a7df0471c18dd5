/**
 * Key and password files (src/protocol/state/key.ts) and the `mode=`, `format=`,
 * `kdf=` values of --key / --migration-key. Properties: parsers refuse only with
 * StateBlobError; a parsed key has exactly the mode's length; a hex key equals what an
 * independent reading of the file gives (optional 0x, 2×keylen hex digits, then end or
 * whitespace); a binary key is the file's first keylen bytes of a file of keylen..32
 * bytes; a derived key has the mode's length and is deterministic.
 */
import {
  type EncryptionMode,
  StateBlobError,
  deriveKeyFromPassword,
  keyLength,
  parseEncryptionMode,
  parseKeyDerivation,
  parseKeyFile,
  parseKeyFormat,
} from '../../../src/protocol/state/index.js';
import { assert, Input, only } from './props.js';

function referenceHex(content: Buffer, want: number): Buffer | undefined {
  const m = /^(?:0x)?([0-9a-fA-F]*)(?:[ \t\n\v\f\r][\s\S]*)?$/.exec(content.toString('latin1'));
  if (m === null || m[1]!.length !== want * 2) return undefined;
  return Buffer.from(m[1]!, 'hex');
}

export function fuzz(data: Buffer): void {
  const inp = new Input(data);
  const sel = inp.u8();
  const words = [inp.str(), inp.str(), inp.str()];
  only('parseEncryptionMode', () => parseEncryptionMode(words[0]!), StateBlobError);
  only('parseKeyFormat', () => parseKeyFormat(words[1]!), StateBlobError);
  only('parseKeyDerivation', () => parseKeyDerivation(words[2]!), StateBlobError);

  const mode: EncryptionMode = sel & 1 ? 'aes-256-cbc' : 'aes-128-cbc';
  const want = keyLength(mode);
  const content = inp.rest();
  if (sel & 2) {
    const key = only(
      'parseKeyFile(binary)',
      () => parseKeyFile(content, 'binary', mode),
      StateBlobError,
    );
    const ok = Math.min(content.length, 32) === want;
    assert.equal(key !== undefined, ok, 'binary key accepted/refused wrongly');
    if (key !== undefined) assert.deepEqual(Buffer.from(key), content.subarray(0, want));
  } else {
    const key = only('parseKeyFile(hex)', () => parseKeyFile(content, 'hex', mode), StateBlobError);
    const ref = referenceHex(content, want);
    assert.equal(key !== undefined, ref !== undefined, 'hex key accepted/refused wrongly');
    if (key !== undefined) assert.deepEqual(Buffer.from(key), ref);
  }
  // PBKDF2 runs 1000 rounds of SHA-512: only for a few inputs.
  const kdf = (sel & 0x1c) === 0x1c ? 'pbkdf2' : 'sha512';
  const k1 = deriveKeyFromPassword(content, kdf, mode);
  assert.equal(k1.length, want);
  if (kdf === 'sha512') assert.deepEqual(k1, deriveKeyFromPassword(content, kdf, mode));
}
