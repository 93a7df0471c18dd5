/** swtpm blob header (control-channel.md §6.3): 10 bytes, big-endian. */
export const BLOB_HEADER_VERSION = 2;
/** min_version written by swtpm; readers reject blobs whose min_version exceeds 2. */
export const BLOB_HEADER_MIN_VERSION = 1;
export const BLOB_HEADER_SIZE = 10;

/** Header flags (swtpm `BLOB_FLAG_*`). */
export const BLOB_FLAG_ENCRYPTED = 0x01;
export const BLOB_FLAG_MIGRATION_ENCRYPTED = 0x02;
export const BLOB_FLAG_MIGRATION_DATA = 0x04;
export const BLOB_FLAG_ENCRYPTED_256BIT_KEY = 0x08;
export const BLOB_FLAG_MIGRATION_256BIT_KEY = 0x10;

/** TLV tags (swtpm `TAG_*`); TLV = u16 BE tag, u32 BE length, value. */
export const TAG_DATA = 1;
export const TAG_ENCRYPTED_DATA = 2;
export const TAG_HMAC = 3;
export const TAG_MIGRATION_DATA = 4;
export const TAG_ENCRYPTED_MIGRATION_DATA = 5;
export const TAG_IVEC_ENCRYPTED_DATA = 6;
export const TAG_IVEC_ENCRYPTED_MIGRATION_DATA = 7;

export const TLV_HEADER_SIZE = 6;

/** AES key sizes swtpm accepts (aes-128-cbc / aes-256-cbc). */
export const AES128_KEY_SIZE = 16;
export const AES256_KEY_SIZE = 32;
export const AES_BLOCK_SIZE = 16;
export const SHA256_DIGEST_SIZE = 32;
