/**
 * Typed control requests and responses, shared by every front end. Field names are
 * the ones in the table (commands.ts), so the codecs can fill them generically.
 */

export type CtrlRequest =
  | { readonly cmd: 'GET_CAPABILITY' }
  | { readonly cmd: 'INIT'; readonly initFlags: number }
  | { readonly cmd: 'SHUTDOWN' }
  | { readonly cmd: 'GET_TPMESTABLISHED' }
  | { readonly cmd: 'SET_LOCALITY'; readonly locality: number }
  | { readonly cmd: 'HASH_START' }
  | { readonly cmd: 'HASH_DATA'; readonly length: number; readonly data: Uint8Array }
  | { readonly cmd: 'HASH_END' }
  | { readonly cmd: 'CANCEL_TPM_CMD' }
  | { readonly cmd: 'STORE_VOLATILE' }
  | { readonly cmd: 'RESET_TPMESTABLISHED'; readonly locality: number }
  | {
      readonly cmd: 'GET_STATEBLOB';
      readonly stateFlags: number;
      readonly type: number;
      readonly offset: number;
    }
  | {
      readonly cmd: 'SET_STATEBLOB';
      readonly stateFlags: number;
      readonly type: number;
      readonly length: number;
      readonly data: Uint8Array;
    }
  | { readonly cmd: 'STOP' }
  | { readonly cmd: 'GET_CONFIG' }
  | { readonly cmd: 'SET_DATAFD'; readonly fd?: number }
  | { readonly cmd: 'SET_BUFFERSIZE'; readonly bufferSize: number }
  | { readonly cmd: 'GET_INFO'; readonly flags: bigint; readonly offset: number }
  | { readonly cmd: 'LOCK_STORAGE'; readonly retries: number };

/**
 * A response. `result` is always there; the other fields only on success (and on
 * GET_STATEBLOB fetch errors, which carry the whole 16-byte header). A response
 * lacking any field of its layout is encoded as the bare 4-byte result, as swtpm does.
 */
export interface CtrlResponse {
  readonly result: number;
  readonly caps?: bigint;
  readonly bit?: number;
  readonly stateFlags?: number;
  readonly totLength?: number;
  readonly length?: number;
  readonly data?: Uint8Array;
  readonly flags?: number;
  readonly bufferSize?: number;
  readonly minSize?: number;
  readonly maxSize?: number;
  readonly buffer?: Uint8Array;
}

export const ok: CtrlResponse = Object.freeze({ result: 0 });

export function fail(result: number): CtrlResponse {
  return { result };
}
