import { PREFIX_SIZE, TPM_SEND_COMMAND } from './prefix.js';

/** libtpms' largest command buffer (TPM_BUFFER_MAX) plus swtpm's 9 bytes of slack. */
export const MAX_COMMAND_READ = 4096 + 9;

/**
 * Bytes needed before unitLength can tell a unit's length: a 10-byte header, or after
 * the TCG prefix the prefix plus the size field (9 + 6). Until then a short read is
 * not yet "whatever one read returned".
 */
export function bytesToTell(buf: Uint8Array, prefixAllowed: boolean): number {
  if (!prefixAllowed || buf.length < 4) return 10;
  const tag = (buf[0]! << 8) | buf[1]!;
  const code = ((buf[0]! << 24) | (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!) >>> 0;
  return tag !== 0x8001 && tag !== 0x8002 && code === TPM_SEND_COMMAND ? PREFIX_SIZE + 6 : 10;
}

/**
 * Length of the complete unit (TCG prefix + command, or command) that starts `buf`,
 * taken from the command's header size field; undefined while fewer bytes than needed
 * to tell have arrived or when the size field is implausible (then the caller falls
 * back to swtpm's rule: whatever one read returned is the command).
 *
 * swtpm itself never frames by length; see docs/compat.md.
 */
export function unitLength(buf: Uint8Array, prefixAllowed: boolean): number | undefined {
  let off = 0;
  if (prefixAllowed && buf.length >= 4) {
    const tag = (buf[0]! << 8) | buf[1]!;
    const code = ((buf[0]! << 24) | (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!) >>> 0;
    if (tag !== 0x8001 && tag !== 0x8002 && code === TPM_SEND_COMMAND) off = PREFIX_SIZE;
  }
  if (buf.length < off + 6) return undefined;
  const size =
    ((buf[off + 2]! << 24) | (buf[off + 3]! << 16) | (buf[off + 4]! << 8) | buf[off + 5]!) >>> 0;
  if (size < 10 || off + size > MAX_COMMAND_READ) return undefined;
  return off + size;
}
