/**
 * The JS bodies of libtpms' `struct libtpms_callbacks`. libtpms calls them
 * synchronously from inside MainInit / Process / GetState (from a koffi worker
 * thread they are marshalled back to the main thread, and the worker waits).
 *
 * An exception escaping a koffi callback reaches C as 0 = TPM_SUCCESS, so a failing
 * write would look like a good one: every body catches, answers a failure result (see
 * `failureResult`) and keeps the error for the caller of the engine call that
 * triggered it.
 */
import type { CallbackImpls, Libtpms, Ptr } from './libtpms.js';
import type { NvStore, StateName } from './types.js';

/** TPM 1.2 / libtpms result codes used by the callbacks (tpm_error.h). */
export const TPM_SUCCESS = 0x0;
export const TPM_FAIL = 0x9;
/** What `loaddata` must answer for "no such blob"; anything else fails MainInit. */
export const TPM_RETRY = 0x800;

const STATE_NAMES: ReadonlySet<string> = new Set<StateName>([
  'permall',
  'volatilestate',
  'savestate',
]);

function stateName(name: string): StateName {
  if (!STATE_NAMES.has(name)) throw new Error(`libtpms asked for unknown NV blob '${name}'`);
  return name as StateName;
}

/** What the callbacks need from the Engine, read on every call (no caching). */
export interface CallbackHost {
  store(): NvStore | undefined;
  locality(): number;
  /** Receives every error thrown by a callback body (libtpms then sees `failureResult`). */
  onError(err: unknown): void;
}

/**
 * What libtpms is told when a callback body throws: the error's own TPM `result`
 * when it carries one (a state file that fails to decrypt: swtpm's load callback
 * hands libtpms TPM_DECRYPT_ERROR, and TPM 1.2's MainInit answers it), else
 * TPM_FAIL. Never TPM_SUCCESS, and never TPM_RETRY, which would make libtpms treat an
 * unreadable state as absent and manufacture a new TPM.
 */
export function failureResult(err: unknown): number {
  const r = typeof err === 'object' && err !== null ? (err as { result?: unknown }).result : 0;
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0 || r > 0xffffffff) return TPM_FAIL;
  return r === TPM_RETRY ? TPM_FAIL : r;
}

export function makeCallbacks(lib: Libtpms, host: CallbackHost): CallbackImpls {
  const { koffi } = lib;
  const store = (): NvStore => {
    const s = host.store();
    if (!s) throw new Error('libtpms needs NV storage but no NvStore is set');
    return s;
  };
  const guard = <A extends unknown[]>(body: (...args: A) => number) => {
    return (...args: A): number => {
      try {
        return body(...args);
      } catch (err) {
        host.onError(err);
        return failureResult(err);
      }
    };
  };
  return {
    nvramInit: guard(() => TPM_SUCCESS),
    ioInit: guard(() => TPM_SUCCESS),
    nvramLoadData: guard((dataPP: Ptr, lenP: Ptr, _tpmNumber: number, name: string) => {
      const data = store().load(stateName(name));
      if (data === undefined) return TPM_RETRY;
      // libtpms free()s *data, so it must come from libc malloc (never a JS buffer).
      const p = lib.malloc(Math.max(data.length, 1));
      if (p === null || p === 0n) throw new Error(`malloc(${data.length}) failed`);
      if (data.length > 0) new Uint8Array(koffi.view(p, data.length)).set(data);
      koffi.encode(dataPP, 'void *', p);
      koffi.encode(lenP, 'uint32_t', data.length);
      return TPM_SUCCESS;
    }),
    nvramStoreData: guard((data: Ptr | null, len: number, _tpmNumber: number, name: string) => {
      const n = stateName(name);
      // The pointer is borrowed for the duration of the call: copy it out.
      const copy =
        data === null || len === 0
          ? new Uint8Array(0)
          : new Uint8Array(new Uint8Array(koffi.view(data, len)));
      store().store(n, copy);
      return TPM_SUCCESS;
    }),
    nvramDeleteName: guard((_tpmNumber: number, name: string, mustExist: number) => {
      const existed = store().delete(stateName(name));
      return !existed && mustExist !== 0 ? TPM_FAIL : TPM_SUCCESS;
    }),
    // Called at the start of every TPM 2 command and by TpmEstablished_Reset; libtpms
    // 0.9.2 ignores the result, so the value is always written.
    ioGetLocality: guard((locP: Ptr) => {
      koffi.encode(locP, 'uint32_t', host.locality() >>> 0);
      return TPM_SUCCESS;
    }),
  };
}
