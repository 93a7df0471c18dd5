import type { AddressInfo } from 'node:net';
import { Acceptor, bindUnixSocket, unlinkQuiet } from './acceptor.js';
import { type Conn, type ConnServer, noop } from './conn.js';
import { fdConn } from './fd-conn.js';
import * as L from './libc.js';
import { listenTcp4 } from './tcp4.js';

/** netinet/in.h, netinet/tcp.h */
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;

/** swtpm's read size on a data channel (4096 + 9; control-channel.md §3.2). */
export const DATA_READ_SIZE = 4105;

/**
 * A connected socket fd (owned from now on) as a Conn, read and written with libc calls
 * (fd-conn.ts): one chunk per read of at most `bufferSize` bytes (a datagram or
 * SOCK_SEQPACKET message is one chunk), no fds (SCM_RIGHTS that a peer sends are closed
 * by the kernel), and for TCP no Nagle delay. A peer's shutdown(SHUT_WR) becomes
 * `onEnd`; the answer can still be written. The socket type is read from the fd unless
 * `o.accepted` (a client accept()ed from a stream listener made here). Throws, leaving
 * `fd` open, if it is not a socket of a type servableSocket() accepts.
 */
export function streamConn(
  fd: number,
  o: { bufferSize?: number; tcp?: boolean; accepted?: boolean; onGone?: () => void } = {},
): Conn {
  if (o.tcp) L.setsockoptInt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  const kind = o.accepted ? 'stream' : undefined;
  return fdConn(fd, {
    bufferSize: o.bufferSize ?? DATA_READ_SIZE,
    maxFds: 0,
    onGone: o.onGone ?? noop,
    ...(kind ? { kind } : {}),
  });
}

/** Whether streamConn() can serve `fd`: a stream, datagram or seqpacket socket. */
export function servableSocket(fd: number): boolean {
  try {
    return [L.SOCK_STREAM, L.SOCK_DGRAM, L.SOCK_SEQPACKET].includes(L.socketType(fd));
  } catch {
    return false;
  }
}

/** Whether a socket fd is IPv4 or IPv6 (its clients then get TCP_NODELAY). */
export function isTcpSocket(fd: number): boolean {
  try {
    const a = L.getsockname(fd, 128);
    const family = a[0]! | (a[1]! << 8); // sa_family_t, little-endian (x86_64, aarch64)
    return family === L.AF_INET || family === AF_INET6;
  } catch {
    return false;
  }
}
const AF_INET6 = 10;

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
  /** Bytes per read of an accepted client; default DATA_READ_SIZE. */
  readonly bufferSize?: number;
  /** An inherited (`fd`) listener is TCP: its clients get TCP_NODELAY. */
  readonly tcp?: boolean;
}

/**
 * A listening TCP socket as a plain fd, and its port. A dotted-quad address is bound
 * with libc calls (tcp4.ts); anything else by node:net (address parsing, IPv6, names),
 * loaded only then, keeping a duplicate of its fd after closing Node's handle, which
 * would otherwise accept every client at once.
 */
async function tcpListenFd(port: number, host: string): Promise<{ fd: number; port: number }> {
  const direct = listenTcp4(host, port);
  if (direct !== undefined) return direct;
  const net = await import('node:net');
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
  const a = server.address() as AddressInfo;
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
  // A listener made here is a stream socket, so are its clients; an inherited one is checked.
  const made = opts.fd === undefined;
  const tcp = made ? opts.path === undefined : opts.tcp === true;
  let current: Conn | undefined;
  const acc = new Acceptor(fd, (client) => {
    try {
      current = streamConn(client, {
        ...(opts.bufferSize !== undefined ? { bufferSize: opts.bufferSize } : {}),
        tcp,
        accepted: made,
        onGone: () => {
          current = undefined;
          setImmediate(() => acc.next());
        },
      });
    } catch {
      L.close(client);
      acc.next();
      return;
    }
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
