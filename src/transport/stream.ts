import { chmodSync, chownSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { type Conn, type ConnServer, noop } from './conn.js';

/** Wraps a connected node:net socket (TCP, Unix, or an fd) as a Conn. */
export function socketConn(sock: net.Socket, peer: string, onGone: () => void = noop): Conn {
  sock.setNoDelay?.(true);
  let closed = false;
  const conn: Conn = {
    peer,
    onData: noop,
    onClose: noop,
    write(buf) {
      if (!closed) sock.write(buf);
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
  const gone = () => {
    if (closed) return;
    closed = true;
    sock.destroy();
    conn.onClose();
    onGone();
  };
  sock.on('end', gone);
  sock.on('close', gone);
  sock.on('error', gone);
  return conn;
}

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
 * A listening socket that serves one client at a time, like swtpm: later clients are
 * accepted by the kernel but get no service (they are paused, not dropped) until the
 * current one is gone; then their already-sent bytes are processed.
 */
export async function listen(opts: ListenOptions): Promise<ConnServer> {
  const waiting: net.Socket[] = [];
  let current: Conn | undefined;
  const server = net.createServer({ pauseOnConnect: true, noDelay: true });
  const cs: ConnServer = {
    onConn: noop,
    address: '',
    close() {
      server.close();
      for (const s of waiting) s.destroy();
      // swtpm's main loop ends with its clients: they see EOF, the process can exit.
      current?.close();
      if (opts.path !== undefined) {
        try {
          unlinkSync(opts.path);
        } catch {}
      }
    },
  };
  const next = () => {
    if (current !== undefined) return;
    const sock = waiting.shift();
    if (sock === undefined) return;
    if (sock.destroyed) return next();
    sock.removeAllListeners('close');
    const conn = socketConn(sock, sock.remoteAddress ?? opts.path ?? 'fd', () => {
      current = undefined;
      setImmediate(next);
    });
    current = conn;
    cs.onConn(conn);
    sock.resume();
  };
  server.on('connection', (sock) => {
    sock.on('close', () => {
      const i = waiting.indexOf(sock);
      if (i >= 0) waiting.splice(i, 1);
    });
    waiting.push(sock);
    next();
  });
  if (opts.path !== undefined) {
    try {
      unlinkSync(opts.path);
    } catch {}
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if (opts.fd !== undefined) server.listen({ fd: opts.fd }, done);
    else if (opts.path !== undefined) server.listen({ path: opts.path, backlog: 1 }, done);
    else server.listen({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1', backlog: 1 }, done);
  });
  if (opts.path !== undefined) {
    chmodSync(opts.path, opts.mode ?? 0o770);
    if (opts.uid !== undefined || opts.gid !== undefined) {
      chownSync(opts.path, opts.uid ?? -1, opts.gid ?? -1);
    }
  }
  const a = server.address();
  Object.defineProperty(cs, 'address', {
    value: typeof a === 'string' ? a : a === null ? '' : String(a.port),
  });
  return cs;
}
