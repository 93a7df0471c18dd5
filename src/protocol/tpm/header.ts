import type { TpmVersion } from '../../engine/types.js';

/** Tags of a TPM response: TPM 2 TPM_ST_NO_SESSIONS, TPM 1.2 TPM_TAG_RSP_COMMAND. */
export const TPM2_ST_NO_SESSIONS = 0x8001;
export const TPM2_ST_SESSIONS = 0x8002;
export const TPM_TAG_RSP_COMMAND = 0x00c4;

export const TPM_HEADER_SIZE = 10;

/** TPM2_Shutdown ordinal; swtpm tracks whether the last command was one. */
export const TPM2_CC_SHUTDOWN = 0x145;
export const TPM2_CC_STARTUP = 0x144;
export const TPM_ORD_STARTUP = 0x99;
export const TPM2_SU_CLEAR = 0;
export const TPM2_SU_STATE = 1;

/** Vendor ordinal swtpm intercepts to set the locality (vTPM proxy support). */
export const TPM_CC_SET_LOCALITY = 0x20001000;

/** A 10-byte response carrying only a result code, with the tag of `version`. */
export function errorResponse(version: TpmVersion, rc: number): Buffer {
  const b = Buffer.allocUnsafe(TPM_HEADER_SIZE);
  b.writeUInt16BE(version === '2.0' ? TPM2_ST_NO_SESSIONS : TPM_TAG_RSP_COMMAND, 0);
  b.writeUInt32BE(TPM_HEADER_SIZE, 2);
  b.writeUInt32BE(rc >>> 0, 6);
  return b;
}

/** Ordinal (command code) of a command, or undefined when shorter than a header. */
export function commandCode(cmd: Uint8Array): number | undefined {
  if (cmd.length < TPM_HEADER_SIZE) return undefined;
  return ((cmd[6]! << 24) | (cmd[7]! << 16) | (cmd[8]! << 8) | cmd[9]!) >>> 0;
}

/** Result code of a response, or undefined when shorter than a header. */
export function responseCode(rsp: Uint8Array): number | undefined {
  return commandCode(rsp);
}
