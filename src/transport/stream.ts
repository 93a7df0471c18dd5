import net from 'node:net';
import { Acceptor, bindUnixSocket, unlinkQuiet } from './acceptor.js';
import { type Conn, type ConnServer, noop } from './conn.js';
import * as L from './libc.js';
import { listenTcp4 } from './tcp4.js';

/**
 * Wraps a connected node:net socket (TCP, Unix, a tty, or an fd) as a Conn. Create the
 * socket with `allowHalfOpen: true`: a peer's shutdown(SHUT_WR) then becomes `onEnd`
 * and the answer can still be written.
 */
export function socketConn(sock: net.Socket, peer: string, onGone: () => void = noop): Conn {
  sock.setNoDelay?.(true);
  let closed = false;
  const conn: Conn = {
    peer,
    onData: noop,
    onClose: noop,
    onDrain: noop,
    onEnd: () => conn.close(),
    write(buf) {
      return closed || sock.write(buf);
    },
    close() {
      if (closed) return;
      closed = true;
      // Flush what is queued (e.g. the SHUTDOWN reply), then let go of the fd even if
      // the peer keeps its end open (QEMU's socketpair, a passed --fd).
      sock.end(() => sock.destroy());
      conn.onClose();
      onGone();
    },
    pause: () => sock.pause(),
    resume: () => sock.resume(),
  };
  sock.on('data', (chunk: Buffer) => conn.onData(chunk, []));
  sock.on('drain', () => conn.onDrain());
  // A paused socket emits 'end' only after every chunk before it was delivered.
  sock.on('end', () => {
    if (!closed) conn.onEnd();
  });
  const gone = () => {
    if (closed) return;
    closed = true;
    sock.destroy();
    conn.onClose();
    onGone();
  };
  sock.on('close', gone);
  sock.on('error', gone);
  return conn;
}

/** A connected socket fd as a half-open-capable node:net socket. */
export const fdSocket = (fd: number): net.Socket => new net.Socket({ fd, allowHalfOpen: true });

export interface ListenOptions {
  /** TCP: port (0 = any) and bind address; Unix: path, mode, uid, gid. */
  readonly port?: number;
  readonly host?: string;
  readonly path?: string;
  readonly mode?: number;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
  /** An inherited listening socket (`fd=`). */
  readonly fd?: number;
}

/**
 * A listening TCP socket as a plain fd, and its port. A dotted-quad address is bound
 * with libc calls (tcp4.ts); anything else by node:net (address parsing, IPv6, names),
 * keeping a duplicate of its fd after closing Node's handle, which would otherwise
 * accept every client at once.
 */
async function tcpListenFd(port: number, host: string): Promise<{ fd: number; port: number }> {
  const direct = listenTcp4(host, port);
  if (direct !== undefined) return direct;
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 1 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const handleFd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const fd = L.dupCloexec(handleFd);
  const a = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return { fd, port: a.port };
}

/**
 * A listening socket that serves one client at a time, like swtpm: it accepts the
 * next client only when the current one is gone, so waiting clients stay in the
 * kernel's backlog (listen backlog 1) and the process holds no fd for them; their
 * already-sent bytes are read once they are accepted. The first accept waits for
 * `start()`.
 */
export async function listen(opts: ListenOptions): Promise<ConnServer> {
  let fd: number;
  let address: string;
  if (opts.fd !== undefined) {
    fd = opts.fd;
    address = `fd ${fd}`;
  } else if (opts.path !== undefined) {
    fd = bindUnixSocket(opts.path, { mode: opts.mode, uid: opts.uid, gid: opts.gid });
    address = opts.path;
  } else {
    const t = await tcpListenFd(opts.port ?? 0, opts.host ?? '127.0.0.1');
    fd = t.fd;
    address = String(t.port);
  }
  let current: Conn | undefined;
  const acc = new Acceptor(fd, (client) => {
    let sock: net.Socket;
    try {
      sock = fdSocket(client);
    } catch {
      L.close(client);
      acc.next();
      return;
    }
    current = socketConn(sock, sock.remoteAddress ?? opts.path ?? 'fd', () => {
      current = undefined;
      setImmediate(() => acc.next());
    });
    cs.onConn(current);
  });
  let started = false;
  const cs: ConnServer = {
    onConn: noop,
    address,
    start() {
      if (started) return;
      started = true;
      acc.next();
    },
    close() {
      acc.close();
      // swtpm's main loop ends with its clients: they see EOF, the process can exit.
      current?.close();
      if (opts.path !== undefined) {
        try {
          unlinkQuiet(opts.path);
        } catch {}
      }
    },
  };
  return cs;
}
