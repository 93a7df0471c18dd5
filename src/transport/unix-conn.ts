/**
 * Adapters from FdChannel / UnixServer to the session layer's Conn / ConnServer
 * (conn.ts), for a Unix control socket that must receive SCM_RIGHTS fds and for a
 * data fd passed with CMD_SET_DATAFD (SOCK_STREAM or SOCK_DGRAM).
 */
import { type Conn, type ConnServer, noop } from './conn.js';
import { FdChannel, type FdChannelOptions } from './fd-channel.js';
import { UnixServer, type UnixServerOptions } from './unix-server.js';

/** A Conn whose calls go to the channel `get()` returns (once it exists). */
function connOf(peer: string, get: () => FdChannel | undefined): Conn {
  const conn: Conn = {
    peer,
    onData: noop,
    onClose: noop,
    onDrain: noop,
    onEnd: () => conn.close(),
    write: (buf) => {
      const ch = get();
      if (ch === undefined) return true;
      // A failed write closes the channel, which reports through onClose.
      ch.write(buf).then(() => {
        if (!ch.writePending) conn.onDrain();
      }, noop);
      return !ch.writePending;
    },
    close: () => get()?.end(),
    pause: () => get()?.pause(),
    resume: () => get()?.resume(),
  };
  return conn;
}

/**
 * Wraps a connected socket fd (owned from now on) as a Conn: one chunk per recvmsg,
 * so a datagram is one chunk. `bufferSize` 4105 is swtpm's data buffer (4096 + 9).
 * Throws (and leaves `fd` open) when `fd` is not a socket.
 *
 * @example
 * const data = fdConn(msg.fds[0], { bufferSize: 4105 }); // after CMD_SET_DATAFD
 * data.onData = (cmd) => session.command(cmd);
 */
export function fdConn(
  fd: number,
  opts: Omit<FdChannelOptions, 'onMessage' | 'onClose' | 'onEnd'> = {},
): Conn {
  const conn = connOf(`fd ${fd}`, () => ch); // called only after `ch` exists
  const ch = new FdChannel(fd, {
    ...opts,
    onMessage: (m) => conn.onData(m.data, m.fds),
    onClose: () => conn.onClose(),
    onEnd: () => conn.onEnd(),
  });
  return conn;
}

/**
 * A ConnServer over a UnixServer (path, `fd=` listener or `clientFd=`): chunks carry
 * the fds received with them. Nothing is accepted or read before `start()`.
 */
export function unixConnServer(
  opts: Omit<UnixServerOptions, 'onMessage' | 'onConnection' | 'onClose' | 'onEnd'>,
): ConnServer {
  let conn: Conn | undefined;
  let chan: FdChannel | undefined;
  const server: ConnServer = {
    onConn: noop,
    start: () => srv.start(),
    close: () => srv.closeServer(),
    address: opts.path ?? `fd ${opts.fd ?? opts.clientFd}`,
  };
  const srv = new UnixServer({
    ...opts,
    paused: true,
    onConnection: (ch) => {
      chan = ch;
      conn = connOf(`unix ${server.address}`, () => ch);
      server.onConn(conn);
    },
    onMessage: (m, ch) => {
      if (ch === chan) conn?.onData(m.data, m.fds);
    },
    onEnd: (ch) => {
      if (ch === chan) conn?.onEnd();
    },
    onClose: (_r, _e, ch) => {
      if (ch !== chan) return;
      const c = conn;
      conn = chan = undefined;
      c?.onClose();
    },
  });
  return server;
}
