/**
 * Readiness of an fd from libuv, through `koffi.node.poll` (a uv_poll_t on Node's own
 * event loop): what FdChannel, the listeners (acceptor.ts, unix-server.ts) and the CUSE
 * device (cuse.ts) wait on instead of a thread. Handles are kept referenced here until
 * closePoll(), so that garbage collection never closes one that is still wanted.
 */
import { declareOnce } from '../engine/native.js';
import * as L from './libc.js';

export type PollHandle = {
  start(opts: { readable?: boolean; writable?: boolean }, cb: PollCallback): void;
  stop(): void;
  close(): void;
};
// koffi 3.3.4 calls back with (status, events) although its index.d.ts declares only
// (events); status < 0 is a negated errno from libuv (e.g. -EBADF).
export type PollCallback = (status: number, ev: { readable: boolean; writable: boolean }) => void;

/**
 * Live uv_poll handles. A PollHandle nobody references is garbage-collected, and its
 * finalizer closes the uv_poll: events stop and the process may exit. They are kept in
 * one process-wide set (engine/native.ts), as koffi's handles are process-wide.
 */
function pollRegistry(): Set<PollHandle> {
  return new Set<PollHandle>();
}
const livePolls = (): Set<PollHandle> => declareOnce(pollRegistry);

/** uv_poll_start on `fd`; libuv allows one poll handle per fd, restarted to change events. */
export function startPoll(
  fd: number,
  opts: { readable?: boolean; writable?: boolean },
  cb: PollCallback,
): PollHandle {
  const k = L.koffi() as unknown as {
    node: { poll(fd: number, o: object, cb: PollCallback): PollHandle | null };
  };
  const h = k.node.poll(fd, opts, cb);
  if (!h) throw new Error(`uv_poll on fd ${fd} failed`);
  livePolls().add(h);
  return h;
}

/** Stops and releases a handle from startPoll(); do this before close(fd). */
export function closePoll(h: PollHandle): void {
  h.close(); // uv_poll_stop now, uv_close completes on the next loop turn
  livePolls().delete(h);
}
