/**
 * The vTPM proxy fd as a data channel. The kernel's read() blocks until it has queued a
 * command and ignores O_NONBLOCK (runtime-features.md §3.1), and libuv joins its thread
 * pool at process exit: a read() left pending there would hold the exit (and
 * /dev/tpmN) until the kernel's next command, which may never come. So the pool only
 * ever waits in poll() with a short timeout, and read() runs once POLLIN says a
 * command is queued: one read() is one whole command, one write() one response.
 */
import { closeSync, read } from 'node:fs';
import type koffiModule from 'koffi';
import { requireKoffi } from '../engine/koffi.js';
import { type Conn, fdWriter, noop } from './conn.js';

type Koffi = typeof koffiModule;
interface PollFd {
  fd: number;
  events: number;
  revents: number;
}
type PollFn = ((fds: PollFd, nfds: number, timeout: number) => number) & {
  async: (
    fds: PollFd,
    nfds: number,
    timeout: number,
    cb: (err: unknown, ret: number) => void,
  ) => void;
};

const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLNVAL = 0x20;
/** Longest wait of one poll(): bounds how long an exit or close() waits for the pool. */
const POLL_MS = 200;
/** A command is at most 4096 bytes; a shorter buffer would make read() fail with EIO. */
const READ_SIZE = 4096;

function bindPoll(): PollFn {
  const koffi = requireKoffi();
  const pollfd = koffi.struct({ fd: 'int', events: 'short', revents: 'short' });
  return koffi
    .load('libc.so.6')
    .func('poll', 'int', [koffi.inout(koffi.pointer(pollfd)), 'unsigned long', 'int']) as PollFn;
}

/**
 * Serves the fd returned by VTPM_PROXY_IOC_NEW_DEV. close() closes the fd once no
 * poll() or read() is in flight (within POLL_MS), which unregisters /dev/tpmN. A
 * failed write() (EIO for a command the kernel already timed out) goes to
 * `onWriteError`; POLLHUP/POLLERR or a read error close the connection, EOF ends it.
 */
export function vtpmProxyConn(
  fd: number,
  onWriteError: (err: NodeJS.ErrnoException) => void = noop,
): Conn {
  const poll = bindPoll();
  const pfd: PollFd = { fd, events: POLLIN, revents: 0 };
  let closed = false;
  let paused = false;
  let inFlight = false;
  let fdOpen = true;
  const release = () => {
    if (fdOpen && !inFlight) {
      fdOpen = false;
      closeSync(fd);
    }
  };
  const readCommand = () => {
    const buf = Buffer.allocUnsafe(READ_SIZE);
    inFlight = true;
    read(fd, buf, 0, READ_SIZE, null, (err, n) => {
      inFlight = false;
      if (closed) return release();
      if (err) return conn.close();
      if (n === 0) return conn.onEnd();
      conn.onData(buf.subarray(0, n), []);
      next();
    });
  };
  const next = () => {
    if (closed || paused || inFlight) return;
    inFlight = true;
    pfd.revents = 0;
    poll.async(pfd, 1, POLL_MS, (err, ret) => {
      inFlight = false;
      if (closed) return release();
      if (err) return conn.close();
      if (ret > 0 && (pfd.revents & POLLIN) !== 0) return readCommand();
      if (ret > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) !== 0) return conn.close();
      next(); // timeout or EINTR
    });
  };
  const conn: Conn = {
    peer: `vtpm proxy fd ${fd}`,
    onData: noop,
    onClose: noop,
    onDrain: noop,
    onEnd: () => conn.close(),
    // One synchronous write(): the kernel takes a whole response or fails, nothing
    // stays queued here.
    write: fdWriter(fd, () => closed, onWriteError),
    close() {
      if (closed) return;
      closed = true;
      release();
      conn.onClose();
    },
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      next();
    },
  };
  // Start after the caller has set onData (same tick).
  queueMicrotask(next);
  return conn;
}
