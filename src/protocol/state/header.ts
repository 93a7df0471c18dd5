import {
  BLOB_HEADER_MIN_VERSION,
  BLOB_HEADER_SIZE,
  BLOB_HEADER_VERSION,
  TLV_HEADER_SIZE,
} from './constants.js';
import { StateBlobError, TPM_BAD_DATASIZE, TPM_BAD_PARAMETER, TPM_BAD_VERSION } from './errors.js';

/** The 10-byte swtpm blob header. */
export interface BlobHeader {
  readonly version: number;
  readonly minVersion: number;
  readonly hdrSize: number;
  readonly flags: number;
  readonly totlen: number;
}

/**
 * Prepends a version-2 header to `body`, which may first be wrapped in nested TLVs
 * (`tags`, outermost first). One allocation: `encodeBlob(0, plain, [TAG_DATA])` is
 * `encodeBlob(0, encodeTlvs([{ tag: TAG_DATA, value: plain }]))` without the copy.
 *
 * @example encodeBlob(0, tlvs) // 02 01 00 0a 00 00 <totlen BE32> ...tlvs
 */
export function encodeBlob(
  flags: number,
  body: Uint8Array,
  tags: readonly number[] = [],
): Uint8Array {
  const out = new Uint8Array(BLOB_HEADER_SIZE + tags.length * TLV_HEADER_SIZE + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, BLOB_HEADER_VERSION);
  dv.setUint8(1, BLOB_HEADER_MIN_VERSION);
  dv.setUint16(2, BLOB_HEADER_SIZE);
  dv.setUint16(4, flags);
  dv.setUint32(6, out.length);
  let off = BLOB_HEADER_SIZE;
  for (const tag of tags) {
    dv.setUint16(off, tag);
    dv.setUint32(off + 2, out.length - off - TLV_HEADER_SIZE);
    off += TLV_HEADER_SIZE;
  }
  out.set(body, off);
  return out;
}

/**
 * Validates the header the way swtpm's SWTPM_NVRAM_CheckHeader does, in its order:
 * shorter than the header or totlen ≠ blob length → TPM_BAD_PARAMETER; min_version > 2
 * → TPM_BAD_VERSION; hdrsize ≠ 10 → TPM_BAD_DATASIZE. The version byte itself is not
 * checked here.
 *
 * @example checkBlobHeader(blob).flags & BLOB_FLAG_MIGRATION_ENCRYPTED
 */
export function checkBlobHeader(blob: Uint8Array): BlobHeader {
  if (blob.length < BLOB_HEADER_SIZE) {
    throw new StateBlobError(
      'SHORT_HEADER',
      TPM_BAD_PARAMETER,
      `state blob of ${blob.length} bytes is shorter than the ${BLOB_HEADER_SIZE}-byte header`,
    );
  }
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const header: BlobHeader = {
    version: dv.getUint8(0),
    minVersion: dv.getUint8(1),
    hdrSize: dv.getUint16(2),
    flags: dv.getUint16(4),
    totlen: dv.getUint32(6),
  };
  if (header.totlen !== blob.length) {
    throw new StateBlobError(
      'TOTLEN_MISMATCH',
      TPM_BAD_PARAMETER,
      `state blob header says ${header.totlen} bytes but the blob has ${blob.length}`,
    );
  }
  if (header.minVersion > BLOB_HEADER_VERSION) {
    throw new StateBlobError(
      'BAD_MIN_VERSION',
      TPM_BAD_VERSION,
      `state blob needs header version ${header.minVersion}, only ${BLOB_HEADER_VERSION} is supported`,
    );
  }
  if (header.hdrSize !== BLOB_HEADER_SIZE) {
    throw new StateBlobError(
      'BAD_HDRSIZE',
      TPM_BAD_DATASIZE,
      `state blob header size is ${header.hdrSize}, expected ${BLOB_HEADER_SIZE}`,
    );
  }
  return header;
}

/**
 * True when the first bytes look like a swtpm header (version and min_version 1 or 2,
 * high byte of hdrsize 0), i.e. a header that failed checkBlobHeader belongs to a
 * damaged file rather than to a header-less legacy file (libtpms blobs start with a
 * 16-bit 0x0003/0x0004 version; a random ciphertext matches with p ≈ 2.4e-7).
 */
export function looksLikeBlobHeader(bytes: Uint8Array): boolean {
  const v = (b: number | undefined) => b === 1 || b === 2;
  return bytes.length >= 3 && v(bytes[0]) && v(bytes[1]) && bytes[2] === 0;
}
