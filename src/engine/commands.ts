/**
 * The few TPM wire facts the engine itself needs: which ordinals run off the main
 * thread, and the response to send when libtpms produced none.
 */
import type { TpmVersion } from './types.js';

/** TPM 2 command codes (TPM 2.0 Part 2, TPM_CC) that generate keys. */
export const TPM2_CC_CreatePrimary = 0x131;
export const TPM2_CC_Create = 0x153;
export const TPM2_CC_CreateLoaded = 0x191;
/** TPM 1.2 ordinals (TPM_ORD) that generate RSA keys. */
export const TPM_ORD_TakeOwnership = 0x0d;
export const TPM_ORD_CreateWrapKey = 0x1f;

/**
 * The commands swtpm's CUSE front end also treats as long-running; they run on a
 * worker thread so the event loop stays free and TPMLIB_CancelCommand can reach them.
 */
const LONG: Readonly<Record<TpmVersion, ReadonlySet<number>>> = {
  '2.0': new Set([TPM2_CC_CreatePrimary, TPM2_CC_Create, TPM2_CC_CreateLoaded]),
  '1.2': new Set([TPM_ORD_TakeOwnership, TPM_ORD_CreateWrapKey]),
};

/** Reads the command code / ordinal: big-endian u32 at bytes 6..9 of the header. */
export function commandCode(cmd: Uint8Array): number | undefined {
  if (cmd.length < 10) return undefined;
  return ((cmd[6]! << 24) | (cmd[7]! << 16) | (cmd[8]! << 8) | cmd[9]!) >>> 0;
}

/**
 * @example
 * isLongCommand('2.0', createPrimaryCmd); // true
 */
export function isLongCommand(version: TpmVersion, cmd: Uint8Array): boolean {
  const cc = commandCode(cmd);
  return cc !== undefined && LONG[version].has(cc);
}

/**
 * 10-byte error response, as swtpm's tpmlib_write_fatal_error_response builds it:
 * TPM 2 → tag 0x8001 TPM_ST_NO_SESSIONS, rc 0x101 TPM_RC_FAILURE;
 * TPM 1.2 → tag 0x00c4 TPM_TAG_RSP_COMMAND, rc 0x09 TPM_FAIL.
 */
export function fatalErrorResponse(version: TpmVersion): Uint8Array {
  const rsp = new Uint8Array(10);
  const dv = new DataView(rsp.buffer);
  dv.setUint16(0, version === '2.0' ? 0x8001 : 0x00c4);
  dv.setUint32(2, 10);
  dv.setUint32(6, version === '2.0' ? 0x101 : 0x09);
  return rsp;
}
