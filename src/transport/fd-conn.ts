/**
 * A connected socket fd as the session layer's Conn (conn.ts), read and written with
 * libc calls through FdChannel: accepted TCP and Unix clients, a `--fd` socket, and a
 * data fd passed with CMD_SET_DATAFD. node:net is not needed for any of them (loading
 * it and its streams cost about 5 ms of every start; docs/performance.md, "Start-up").
 */
import { type Conn, noop } from './conn.js';
import { FdChannel, type FdChannelOptions } from './fd-channel.js';

export interface FdConnOptions extends Omit<FdChannelOptions, 'onMessage' | 'onClose' | 'onEnd'> {
  /** Called once the connection closed, after the session's `onClose`. */
  readonly onGone?: () => void;
}

/** A Conn whose calls go to the channel `get()` returns (once it exists). */
export function connOf(peer: string, get: () => FdChannel | undefined): Conn {
  const drained = () => conn.onDrain();
  const conn: Conn = {
    peer,
    onData: noop,
    onClose: noop,
    onDrain: noop,
    onEnd: () => conn.close(),
    // A failed write closes the channel, which reports through onClose.
    write: (buf) => get()?.offer(buf, drained) ?? true,
    close: () => get()?.end(),
    pause: () => get()?.pause(),
    resume: () => get()?.resume(),
  };
  return conn;
}

/**
 * Wraps a connected socket fd (owned from now on) as a Conn: one chunk per recvmsg,
 * so a datagram is one chunk. A peer's shutdown(SHUT_WR) becomes `onEnd`, and the
 * answer can still be written. `bufferSize` 4105 is swtpm's data buffer (4096 + 9).
 * Throws (and leaves `fd` open) when `fd` is not a socket.
 *
 * @example
 * const data = fdConn(msg.fds[0], { bufferSize: 4105 }); // after CMD_SET_DATAFD
 * data.onData = (cmd) => session.command(cmd);
 */
export function fdConn(fd: number, opts: FdConnOptions = {}): Conn {
  const { onGone, ...channel } = opts;
  const conn = connOf(`fd ${fd}`, () => ch); // called only after `ch` exists
  const ch = new FdChannel(fd, {
    ...channel,
    onMessage: (m) => conn.onData(m.data, m.fds),
    onClose: () => {
      conn.onClose();
      onGone?.();
    },
    onEnd: () => conn.onEnd(),
  });
  return conn;
}
