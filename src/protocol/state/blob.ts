import {
  AES256_KEY_SIZE,
  BLOB_FLAG_ENCRYPTED,
  BLOB_FLAG_ENCRYPTED_256BIT_KEY,
  BLOB_FLAG_MIGRATION_256BIT_KEY,
  BLOB_FLAG_MIGRATION_DATA,
  BLOB_FLAG_MIGRATION_ENCRYPTED,
  BLOB_HEADER_SIZE,
  TAG_DATA,
  TAG_ENCRYPTED_DATA,
  TAG_ENCRYPTED_MIGRATION_DATA,
  TAG_IVEC_ENCRYPTED_DATA,
  TAG_IVEC_ENCRYPTED_MIGRATION_DATA,
  TAG_MIGRATION_DATA,
} from './constants.js';
import { checkKeySize, decryptFromTlvs, encryptToTlvs, legacyDecrypt } from './crypto.js';
import { StateBlobError, TPM_BAD_VERSION, TPM_FAIL, TPM_KEYNOTFOUND } from './errors.js';
import { checkBlobHeader, encodeBlob, looksLikeBlobHeader } from './header.js';
import { type Tlv, encodeTlvs, findTlv } from './tlv.js';

/** A decoded state file. `version` 1 = legacy layout (no TLVs). */
export interface DecodedStateFile {
  readonly plain: Uint8Array;
  readonly version: 1 | 2;
  /** Header flags (0 for a header-less legacy file). */
  readonly flags: number;
  /** True when the file had no swtpm header at all (very old swtpm). */
  readonly headerless: boolean;
}

/** One encryption layer: which TLV tags and which header flag describe it. */
interface Layer {
  readonly tagEncrypted: number;
  readonly tagPlain: number;
  readonly tagIv: number;
  readonly flag256: number;
  readonly what: string;
}

const FILE_LAYER: Layer = {
  tagEncrypted: TAG_ENCRYPTED_DATA,
  tagPlain: TAG_DATA,
  tagIv: TAG_IVEC_ENCRYPTED_DATA,
  flag256: BLOB_FLAG_ENCRYPTED_256BIT_KEY,
  what: 'state',
};
const MIGRATION_LAYER: Layer = {
  tagEncrypted: TAG_ENCRYPTED_MIGRATION_DATA,
  tagPlain: TAG_MIGRATION_DATA,
  tagIv: TAG_IVEC_ENCRYPTED_MIGRATION_DATA,
  flag256: BLOB_FLAG_MIGRATION_256BIT_KEY,
  what: 'migration data',
};

function encryptedFlags(key: Uint8Array, flag: number, flag256: number): number {
  return flag | (key.length === AES256_KEY_SIZE ? flag256 : 0);
}

/**
 * Wraps a plain libtpms blob for storage: without key `flags 0, DATA(plain)`; with key
 * `flags ENCRYPTED (|ENCRYPTED_256BIT_KEY)`, ENCRYPTED_DATA + HMAC + IVEC_ENCRYPTED_DATA.
 *
 * @example writeFileSync('tpm2-00.permall', encodeStateFile(permall, key))
 */
export function encodeStateFile(plain: Uint8Array, key?: Uint8Array): Uint8Array {
  if (key === undefined) return encodeBlob(0, plain, [TAG_DATA]);
  const flags = encryptedFlags(key, BLOB_FLAG_ENCRYPTED, BLOB_FLAG_ENCRYPTED_256BIT_KEY);
  return encodeBlob(
    flags,
    encodeTlvs(encryptToTlvs(key, plain, TAG_ENCRYPTED_DATA, TAG_IVEC_ENCRYPTED_DATA)),
  );
}

/**
 * Reads one layer the way swtpm's GetDecryptedData / GetPlainData do: with a key the
 * data must be encrypted (v2: key size must match the header flag); without one it
 * must be plain.
 */
function openLayer(
  body: Uint8Array,
  version: number,
  flags: number,
  layer: Layer,
  key: Uint8Array | undefined,
): Uint8Array {
  if (key !== undefined) {
    if (version === 1) return legacyDecrypt(key, body, layer.what);
    checkKeySize(key, flags, layer.flag256, layer.what);
    return decryptFromTlvs(key, body, layer.tagEncrypted, layer.tagIv, layer.what);
  }
  if (version === 1) return body;
  const value = findTlv(body, layer.tagPlain);
  if (value === undefined) {
    throw new StateBlobError(
      'MISSING_TAG',
      TPM_FAIL,
      `could not find plain ${layer.what} (tag ${layer.tagPlain})`,
    );
  }
  return value;
}

/**
 * Decodes a state file as swtpm's SWTPM_NVRAM_LoadData does. With `key` the file must
 * be encrypted with it (a plain file is TPM_FAIL, as in swtpm); without, it must be
 * plain. Header version 1 and header-less files use the legacy layout. Deviation from
 * swtpm: a file whose header looks like a swtpm header but fails the checks (e.g.
 * truncated: totlen mismatch) is an error here, where swtpm would hand the whole file
 * to libtpms as a header-less blob.
 *
 * @example const { plain } = decodeStateFile(readFileSync('tpm2-00.permall'), key)
 */
export function decodeStateFile(bytes: Uint8Array, key?: Uint8Array): DecodedStateFile {
  let version: number;
  let flags = 0;
  let body: Uint8Array;
  let headerless = false;
  try {
    const h = checkBlobHeader(bytes);
    version = h.version;
    flags = h.flags;
    body = bytes.subarray(BLOB_HEADER_SIZE);
  } catch (e) {
    if (looksLikeBlobHeader(bytes)) throw e;
    version = 1;
    body = bytes;
    headerless = true;
  }
  if (version !== 1 && version !== 2) {
    throw new StateBlobError(
      'UNSUPPORTED_VERSION',
      TPM_BAD_VERSION,
      `state file has unsupported header version ${version}`,
    );
  }
  if (key === undefined && version === 2 && (flags & BLOB_FLAG_ENCRYPTED) !== 0) {
    if (findTlv(body, TAG_DATA) === undefined) {
      throw new StateBlobError(
        'KEY_NOT_FOUND',
        TPM_KEYNOTFOUND,
        'state file is encrypted but no key (--key) was given',
      );
    }
  }
  const plain = openLayer(body, version, flags, FILE_LAYER, key);
  return { plain, version, flags, headerless };
}

/** Options for building a GET_STATEBLOB payload. */
export interface EncodeMigrationOptions {
  /** `--key`: the state file key. */
  readonly fileKey?: Uint8Array | undefined;
  /** `--migration-key`. */
  readonly migrationKey?: Uint8Array | undefined;
  /** PTM_STATE_FLAG_DECRYPTED was requested. */
  readonly decrypted: boolean;
}

/** A GET_STATEBLOB payload and whether it is still file-key encrypted. */
export interface MigrationBlob {
  readonly blob: Uint8Array;
  /** Report PTM_STATE_FLAG_ENCRYPTED in the response's state_flags. */
  readonly encrypted: boolean;
}

/**
 * Builds the GET_STATEBLOB payload from a plain libtpms blob (swtpm's
 * SWTPM_NVRAM_GetStateBlob): inner TLVs = DATA(plain), or — when DECRYPTED was not
 * requested and a file key exists — the blob re-encrypted with the file key and a fresh
 * IV; outer = MIGRATION_DATA(inner), or inner encrypted with the migration key.
 *
 * @example encodeMigrationBlob(permall, { decrypted: true }).blob // flags 0x04
 */
export function encodeMigrationBlob(
  plain: Uint8Array,
  opts: EncodeMigrationOptions,
): MigrationBlob {
  let flags = BLOB_FLAG_MIGRATION_DATA;
  let inner: Tlv[];
  const encrypted = !opts.decrypted && opts.fileKey !== undefined;
  if (!encrypted && opts.migrationKey === undefined) {
    // The keyless layout, written in one allocation (no intermediate TLV buffers).
    return { blob: encodeBlob(flags, plain, [TAG_MIGRATION_DATA, TAG_DATA]), encrypted };
  }
  if (opts.fileKey !== undefined && encrypted) {
    inner = encryptToTlvs(opts.fileKey, plain, TAG_ENCRYPTED_DATA, TAG_IVEC_ENCRYPTED_DATA);
    flags |= encryptedFlags(opts.fileKey, BLOB_FLAG_ENCRYPTED, BLOB_FLAG_ENCRYPTED_256BIT_KEY);
  } else {
    inner = [{ tag: TAG_DATA, value: plain }];
  }
  const innerBytes = encodeTlvs(inner);
  let outer: Tlv[];
  if (opts.migrationKey !== undefined) {
    const k = opts.migrationKey;
    flags |= encryptedFlags(k, BLOB_FLAG_MIGRATION_ENCRYPTED, BLOB_FLAG_MIGRATION_256BIT_KEY);
    outer = encryptToTlvs(
      k,
      innerBytes,
      TAG_ENCRYPTED_MIGRATION_DATA,
      TAG_IVEC_ENCRYPTED_MIGRATION_DATA,
    );
  } else {
    outer = [{ tag: TAG_MIGRATION_DATA, value: innerBytes }];
  }
  return { blob: encodeBlob(flags, encodeTlvs(outer)), encrypted };
}

/** Options for unwrapping a SET_STATEBLOB payload. */
export interface DecodeMigrationOptions {
  /** PTM_STATE_FLAG_ENCRYPTED was set in the request's state_flags. */
  readonly stateEncrypted?: boolean;
  readonly fileKey?: Uint8Array | undefined;
  readonly migrationKey?: Uint8Array | undefined;
}

/**
 * Unwraps a SET_STATEBLOB payload into the plain libtpms blob for TPMLIB_SetState
 * (swtpm's SWTPM_NVRAM_SetStateBlob). An empty blob, a header-only blob, and (swtpm
 * 0.7.1 quirk) a blob whose header version is neither 1 nor 2 all yield an empty
 * result = "clear this state". A blob without MIGRATION_ENCRYPTED is accepted even when
 * a migration key is configured (the "upgrade" path). Version-1 blobs carry the data
 * right after the header, legacy-encrypted.
 *
 * @example decodeMigrationBlob(blob, { migrationKey }) // plain libtpms permall
 */
export function decodeMigrationBlob(blob: Uint8Array, opts: DecodeMigrationOptions): Uint8Array {
  if (blob.length === 0) return blob;
  const h = checkBlobHeader(blob);
  const body = blob.subarray(BLOB_HEADER_SIZE);
  if (body.length === 0 || (h.version !== 1 && h.version !== 2)) return new Uint8Array(0);
  let mig: Uint8Array;
  if ((h.flags & BLOB_FLAG_MIGRATION_ENCRYPTED) !== 0) {
    if (opts.migrationKey === undefined) throw missingKey('migration key (--migration-key)');
    mig = openLayer(body, h.version, h.flags, MIGRATION_LAYER, opts.migrationKey);
  } else {
    mig = openLayer(body, h.version, h.flags, MIGRATION_LAYER, undefined);
  }
  if (opts.stateEncrypted === true || (h.flags & BLOB_FLAG_ENCRYPTED) !== 0) {
    if (opts.fileKey === undefined) throw missingKey('state key (--key)');
    return openLayer(mig, h.version, h.flags, FILE_LAYER, opts.fileKey);
  }
  return openLayer(mig, h.version, h.flags, FILE_LAYER, undefined);
}

function missingKey(which: string): StateBlobError {
  return new StateBlobError(
    'KEY_NOT_FOUND',
    TPM_KEYNOTFOUND,
    `state blob is encrypted but no ${which} is configured`,
  );
}
