import { writeSync } from 'node:fs';

/**
 * A byte connection as the session layer sees it: chunks in (each one read, with any
 * fds that rode along), whole buffers out. Transports implement it; they know nothing
 * of the protocol.
 *
 * Flow control is the session's job: it pauses the connection while a command runs or
 * a response is unsent (write() returned false, until onDrain), so a peer that writes
 * without reading leaves its bytes in the kernel, not in this process.
 */
export interface Conn {
  /**
   * Sends the whole buffer as one write (swtpm answers with one write/writev). Returns
   * false when bytes are still queued here: the caller waits for `onDrain`.
   */
  write(buf: Uint8Array): boolean;
  /** Flushes what was written, then closes this connection; `onClose` fires once. */
  close(): void;
  /** Stops or restarts delivery of chunks (back-pressure). */
  pause(): void;
  resume(): void;
  onData: (chunk: Buffer, fds: readonly number[]) => void;
  /**
   * The peer sends nothing more (half-close: shutdown(SHUT_WR)) but may still read.
   * Delivered only while not paused, after every chunk before it. The session answers
   * what it received, then calls close(). Default: close().
   */
  onEnd: () => void;
  /** Everything written so far has been handed to the kernel. */
  onDrain: () => void;
  onClose: () => void;
  /** For logs. */
  readonly peer: string;
}

/**
 * A listening transport that hands out one connection at a time. It listens from the
 * start but accepts only after `start()`: clients that connect earlier wait in the
 * kernel's backlog, as they do while swtpm starts (it polls its sockets from its main
 * loop, which runs only once the TPM and the seccomp filter are in place).
 */
export interface ConnServer {
  /** Called for each accepted connection, only after the previous one closed. */
  onConn: (conn: Conn) => void;
  /** Begins accepting (idempotent; a no-op after close()). */
  start(): void;
  /** Stops listening; removes a Unix socket file. */
  close(): void;
  /** Human readable address (port or path), for logs and tests. */
  readonly address: string;
}

export const noop = (): void => {};

/**
 * `Conn.write` for a device fd whose driver takes a whole response in one write() or
 * fails it (a character device, the vTPM proxy), as swtpm writes: one synchronous
 * write(), nothing queued here, so it always returns true. A failed write() goes to
 * `onError`; once `isClosed()` nothing is written.
 *
 * @example
 * const conn: Conn = { ...others, write: fdWriter(fd, () => closed, () => conn.close()) };
 */
export function fdWriter(
  fd: number,
  isClosed: () => boolean,
  onError: (err: NodeJS.ErrnoException) => void,
): (buf: Uint8Array) => boolean {
  return (buf) => {
    if (isClosed()) return true;
    try {
      writeSync(fd, buf);
    } catch (err) {
      onError(err as NodeJS.ErrnoException);
    }
    return true;
  };
}
