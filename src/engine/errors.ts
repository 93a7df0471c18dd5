/** The engine's error and result shapes, shared by engine.ts and buffers.ts. */

export type EngineErrorCode =
  | 'ENGINE_BUSY'
  | 'ENGINE_NOT_RUNNING'
  | 'ENGINE_NO_MEMORY'
  | 'ENGINE_CLOSED';

/** Misuse of the engine (a caller bug), as opposed to a TPM result code. */
export class EngineError extends Error {
  readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}

export interface StateResult {
  readonly rc: number;
  readonly data: Uint8Array;
}
