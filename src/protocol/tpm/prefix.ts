/**
 * The TCG / MS-simulator "TPM_SEND_COMMAND" prefix (swtpm cap bit 15, TPM 2 only):
 * u32 BE 8, u8 locality, u32 BE size (ignored by swtpm), then the command. The reply
 * is u32 BE length, the response, then four zero bytes.
 */
export const TPM_SEND_COMMAND = 8;
export const PREFIX_SIZE = 9;

/**
 * Returns the locality and command when `buf` carries the prefix. swtpm only looks
 * when the read is at least 10 bytes and the first two bytes are not a TPM 2 tag.
 */
export function parseSendCommandPrefix(
  buf: Uint8Array,
): { locality: number; command: Uint8Array } | undefined {
  if (buf.length < 10) return undefined;
  const tag = (buf[0]! << 8) | buf[1]!;
  if (tag === 0x8001 || tag === 0x8002) return undefined;
  const code = ((buf[0]! << 24) | (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!) >>> 0;
  if (code !== TPM_SEND_COMMAND) return undefined;
  return { locality: buf[4]!, command: buf.subarray(PREFIX_SIZE) };
}

/** Wraps a response for a prefixed command: length, response, 4-byte zero ack. */
export function wrapPrefixedResponse(rsp: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(rsp.length + 8);
  out.writeUInt32BE(rsp.length, 0);
  out.set(rsp, 4);
  out.writeUInt32BE(0, rsp.length + 4);
  return out;
}
