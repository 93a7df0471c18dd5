export { TPM_FAIL, TPM_RETRY, TPM_SUCCESS } from './callbacks.js';
export {
  TPM2_CC_Create,
  TPM2_CC_CreateLoaded,
  TPM2_CC_CreatePrimary,
  TPM_ORD_CreateWrapKey,
  TPM_ORD_TakeOwnership,
  commandCode,
  fatalErrorResponse,
  isLongCommand,
} from './commands.js';
export {
  type BlobType,
  Engine,
  EngineError,
  type EngineErrorCode,
  type StateResult,
} from './engine.js';
export {
  TPMLIB_INFO_TPMATTRIBUTES,
  TPMLIB_INFO_TPMFEATURES,
  TPMLIB_INFO_TPMSPECIFICATION,
  TPMPROP_TPM_BUFFER_MAX,
  TPMPROP_TPM_KEY_HANDLES,
  TPMPROP_TPM_RSA_KEY_LENGTH_MAX,
} from './libtpms.js';
export { loadLibtpmsCopy } from './copies.js';
export { enginePoolStats } from './pool.js';
export type { BufferSizeInfo, NvStore, StateName, TpmVersion } from './types.js';
