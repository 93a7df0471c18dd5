/**
 * Which libtpms copies are in use. A loaded library is a process-wide resource, so
 * this bookkeeping is too: the first TPM gets the normally loaded library (no extra
 * cost at start-up), every further one a private copy (copies.ts). A released copy
 * is kept and reused rather than unloaded: dlclose() of code that registered koffi
 * callbacks and OpenSSL state is not worth the risk, and reuse keeps koffi's callback
 * slots (8,192 per process, six per copy) bounded by the peak number of TPMs.
 */
import { loadLibtpmsCopy } from './copies.js';
import { Engine, EngineError } from './engine.js';

const held = new Set<Engine>();
const idle: Engine[] = [];

/**
 * An engine no other TPM of this process uses, stopped and without a store.
 *
 * @example
 * const engine = acquireEngine();
 * engine.setStore(store);
 * engine.start('2.0');
 * // ...
 * releaseEngine(engine);
 */
export function acquireEngine(): Engine {
  let engine = idle.pop();
  if (engine === undefined) {
    const first = Engine.get();
    engine = held.has(first) ? new Engine(loadLibtpmsCopy()) : first;
  }
  held.add(engine);
  return engine;
}

/**
 * Gives the engine back: it is terminated (without TPM2_Shutdown: the device sends
 * that first) and reset. Throws ENGINE_BUSY while a command runs on the worker.
 */
export function releaseEngine(engine: Engine): void {
  if (!held.has(engine)) return;
  if (engine.busy) {
    throw new EngineError('ENGINE_BUSY', 'a TPM command is running on the worker thread');
  }
  engine.reset();
  held.delete(engine);
  idle.push(engine);
}

/** Engines in use and loaded copies kept for reuse (for tests and benchmarks). */
export function enginePoolStats(): { held: number; idle: number } {
  return { held: held.size, idle: idle.length };
}
