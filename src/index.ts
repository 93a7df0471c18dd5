/**
 * tswtpm: a software TPM emulator for Node.js, wire-compatible with swtpm.
 *
 * The package exports the typed control/data clients (which work against tswtpm and
 * C swtpm alike), `startTpm()` to spawn an emulator for a test suite, and
 * `startTpmInProcess()` to run one inside the calling process.
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
export { resultName } from './protocol/tpm/results.js';
