/**
 * Which libtpms copies are taken by a TPM. A loaded library is a process-wide resource,
 * so this bookkeeping is too (kept in native.ts): the first TPM gets the normally
 * loaded library (no extra cost at start-up), every further one a private copy
 * (copies.ts). A copy given back is kept and handed out again rather than unloaded:
 * dlclose() of code that registered koffi callbacks and OpenSSL state is not worth the
 * risk, and reuse keeps koffi's callback slots (8,192 per process, six per copy)
 * bounded by the peak number of TPMs.
 */
import { loadLibtpmsCopy } from './copies.js';
import { type Libtpms, loadLibtpms } from './libtpms.js';
import { declareOnce } from './native.js';

interface Copies {
  readonly taken: Set<Libtpms>;
  /** Given back, stopped and reset by the engine that held it. */
  readonly free: Libtpms[];
}

function processCopies(): Copies {
  return { taken: new Set(), free: [] };
}

/**
 * A copy of libtpms that no other TPM of this process uses; give it back with
 * {@link giveBackLibtpms} once it is stopped and reset (Engine.open/close do both).
 */
export function takeLibtpms(): Libtpms {
  const copies = declareOnce(processCopies);
  let lib = copies.free.pop();
  if (lib === undefined) {
    const first = loadLibtpms();
    lib = copies.taken.has(first) ? loadLibtpmsCopy() : first;
  }
  copies.taken.add(lib);
  return lib;
}

export function giveBackLibtpms(lib: Libtpms): void {
  const copies = declareOnce(processCopies);
  if (!copies.taken.delete(lib)) return;
  copies.free.push(lib);
}

/** Copies in use and loaded copies kept for reuse (for tests and benchmarks). */
export function enginePoolStats(): { held: number; idle: number } {
  const copies = declareOnce(processCopies);
  return { held: copies.taken.size, idle: copies.free.length };
}
