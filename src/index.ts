/**
 * tswtpm: a software TPM emulator for Node.js, wire-compatible with swtpm.
 *
 * The package exports the typed control/data clients (which work against tswtpm and
 * C swtpm alike), `startTpm()` to spawn an emulator for a test suite, and
 * `startTpmInProcess()` to run one inside the calling process, and `tpm2`/`tpm12`:
 * builders for common TPM commands and parsers for their responses, to send with
 * `TpmClient.transmit`.
 */
export * from './client/index.js';
export { type InProcessOptions, type InProcessTpm, startTpmInProcess } from './in-process.js';
export {
  CTRL_TABLE,
  type CtrlName,
  type CtrlRequest,
  type CtrlResponse,
  PTM_BLOB_TYPE_PERMANENT,
  PTM_BLOB_TYPE_SAVESTATE,
  PTM_BLOB_TYPE_VOLATILE,
} from './protocol/ctrl/index.js';
export { tpm2, tpm12 } from './protocol/tpm/commands.js';
export type { TpmResponse } from './protocol/tpm/responses.js';
export { resultName } from './protocol/tpm/results.js';
