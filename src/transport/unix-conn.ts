/**
 * The adapter from UnixServer to the session layer's ConnServer (conn.ts), for a Unix
 * control socket that must receive SCM_RIGHTS fds; with fdConn (fd-conn.ts) for a data
 * fd passed with CMD_SET_DATAFD (SOCK_STREAM or SOCK_DGRAM).
 */
import { type Conn, type ConnServer, noop } from './conn.js';
import type { FdChannel } from './fd-channel.js';
import { connOf, fdConn } from './fd-conn.js';
import { UnixServer, type UnixServerOptions } from './unix-server.js';

export { fdConn };

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
