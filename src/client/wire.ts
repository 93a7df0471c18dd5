/**
 * A client byte connection with C `read()` semantics: each read returns at most `max`
 * bytes of what has arrived (never more than one received chunk), EOF, or a timeout.
 * TCP goes through node:net; Unix sockets and inherited fds through FdChannel, so
 * SCM_RIGHTS fds can be sent (CMD_SET_DATAFD).
 */
import net from 'node:net';
import { FdChannel, closeFd } from '../transport/fd-channel.js';
import { connectUnix } from '../transport/unix-server.js';
import { TpmConnectionError } from './errors.js';

export interface Wire {
  /** Writes all bytes (and `fds` as SCM_RIGHTS, Unix only). Rejects with an errno-coded error. */
  write(buf: Uint8Array, fds?: readonly number[]): Promise<void>;
  /**
   * Up to `max` bytes; `null` at end of stream; `undefined` when nothing arrived within
   * `timeoutMs` (no limit when omitted). Rejects with an errno-coded error (ECONNRESET).
   */
  read(max: number, timeoutMs?: number): Promise<Buffer | null | undefined>;
  /** The peer closed or an error happened (buffered bytes may still be read). */
  readonly ended: boolean;
  close(): void;
}

/** Where a control or data channel is: TCP, a Unix socket path, or a connected socket fd. */
export type Address =
  | { readonly host?: string; readonly port: number }
  | { readonly path: string }
  | { readonly fd: number };

export function describe(a: Address): string {
  if ('path' in a) return a.path;
  if ('fd' in a) return `fd ${a.fd}`;
  return `${a.host ?? '127.0.0.1'}:${a.port}`;
}

class Chunks {
  private readonly q: Buffer[] = [];
  private wake: (() => void) | undefined;
  end = false;
  err: Error | undefined;

  push(b: Buffer): void {
    if (b.length > 0) this.q.push(b);
    this.notify();
  }

  finish(err?: Error): void {
    this.end = true;
    this.err ??= err;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async take(max: number, timeoutMs?: number): Promise<Buffer | null | undefined> {
    if (this.q.length === 0 && !this.end) {
      let timer: NodeJS.Timeout | undefined;
      const arrived = await new Promise<boolean>((resolve) => {
        this.wake = () => resolve(true);
        if (timeoutMs !== undefined) timer = setTimeout(() => resolve(false), timeoutMs);
      });
      clearTimeout(timer);
      this.wake = undefined;
      if (!arrived) return undefined;
    }
    const head = this.q[0];
    if (head === undefined) {
      if (this.err) throw this.err;
      return null;
    }
    if (head.length <= max) {
      this.q.shift();
      return head;
    }
    this.q[0] = head.subarray(max);
    return head.subarray(0, max);
  }
}

/** A Wire over a connected node:net socket. */
export function socketWire(sock: net.Socket): Wire {
  const c = new Chunks();
  sock.setNoDelay?.(true);
  sock.on('data', (b: Buffer) => c.push(b));
  sock.on('end', () => c.finish());
  sock.on('close', () => c.finish());
  sock.on('error', (e) => c.finish(e));
  return {
    write: (buf) =>
      new Promise<void>((resolve, reject) => {
        if (sock.destroyed) {
          reject(Object.assign(new Error('socket closed'), { code: 'EPIPE' }));
          return;
        }
        sock.write(buf, (e) => (e ? reject(e) : resolve()));
      }),
    read: (max, t) => c.take(max, t),
    get ended() {
      return c.end;
    },
    close: () => {
      sock.destroy();
    },
  };
}

/** A Wire over an FdChannel (owns it). Fds received with data are closed. */
export function channelWire(ch: FdChannel): Wire {
  let left: Buffer | undefined;
  return {
    write: (buf, fds) => ch.write(buf, fds ?? []),
    async read(max, t) {
      if (left === undefined) {
        const m = await ch.read(t);
        if (m === null) return ch.closed ? null : undefined;
        for (const fd of m.fds) closeQuiet(fd);
        left = m.data;
      }
      const out = left.subarray(0, max);
      left = left.length > max ? left.subarray(max) : undefined;
      return out;
    },
    get ended() {
      return ch.closed;
    },
    close: () => ch.close(),
  };
}

function closeQuiet(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already gone
  }
}

/** Connects a TCP socket; rejects with TpmConnectionError (code ECONNREFUSED, ENOTFOUND, ETIMEDOUT…). */
export function connectTcp(host: string, port: number, timeoutMs?: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const where = `${host}:${port}`;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            sock.destroy();
            reject(new TpmConnectionError(where, 'ETIMEDOUT'));
          }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolve(sock);
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      sock.destroy();
      reject(new TpmConnectionError(where, e.code ?? 'EIO', e));
    });
  });
}

/** Opens a Wire to `addr`. An `fd` address is wrapped (and owned from now on). */
export async function openWire(addr: Address, timeoutMs?: number): Promise<Wire> {
  if ('fd' in addr) return channelWire(new FdChannel(addr.fd, { bufferSize: 65536 }));
  if ('path' in addr) {
    try {
      const opts = timeoutMs === undefined ? {} : { timeoutMs };
      return channelWire(await connectUnix(addr.path, { ...opts, bufferSize: 65536 }));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      throw new TpmConnectionError(addr.path, code, e);
    }
  }
  return socketWire(await connectTcp(addr.host ?? '127.0.0.1', addr.port, timeoutMs));
}

/** Reads exactly `n` bytes before `deadline` (ms since epoch; none when undefined). */
export async function readExact(
  w: Wire,
  n: number,
  deadline: number | undefined,
): Promise<Buffer | null | undefined> {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const t = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
    const b = await w.read(n - got, t);
    if (b === undefined) return undefined;
    if (b === null) return got === 0 ? null : Buffer.concat(parts);
    parts.push(b);
    got += b.length;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
