/**
 * Makes sure a Node.js process has every thread it will ever need, before a seccomp
 * filter that denies clone/clone3 and eventfd2 goes in.
 *
 * V8's platform workers exist from start-up. libuv starts all of its thread-pool
 * threads (UV_THREADPOOL_SIZE, fixed for the life of the process) within the first
 * uv_queue_work() call, and koffi's async calls run on that pool; so one queued fs
 * call is enough. Without it the first pool job fails under the filter, libuv aborts,
 * and abort's tgkill is denied too.
 */
import { stat } from 'node:fs';
import { prefetchStartedPool } from '../engine/prefetch.js';

/**
 * Starts libuv's thread pool (already started when engine/prefetch.ts ran): when this
 * returns, every pool thread exists. libuv's first uv_queue_work() creates them all
 * and waits until each has started (a semaphore in its init_threads()), so the job
 * itself need not be awaited; awaiting it cost a start an event-loop turn (~3 ms).
 */
export function startThreadPool(): void {
  // (a server start's prefetch queued the first job already: its first fs.stat() would
  // cost the start about 0.3 ms)
  if (prefetchStartedPool()) return;
  stat('/', () => {});
}

/**
 * Node's default SIGUSR1 action starts the inspector on a new thread, which the
 * filter would kill. With a listener, SIGUSR1 is ignored instead (docs/compat.md).
 */
export function ignoreInspectorSignal(): void {
  if (process.listenerCount('SIGUSR1') === 0) process.on('SIGUSR1', () => {});
}
