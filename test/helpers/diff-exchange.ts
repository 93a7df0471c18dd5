// Raw exchanges on one connection: a sequence of writes (with optional pauses and
// SCM_RIGHTS fds), then every byte read back until the server goes quiet or closes.
// Used to compare Debian's swtpm 0.7.1 and tswtpm byte for byte.
import { Socket } from 'node:net';
import { FdChannel } from '../../src/transport/fd-channel.js';
import * as L from '../../src/transport/libc.js';
import type { Endpoint } from './diff-servers.js';

export interface Step {
  /** Bytes to write (a string is hex; whitespace is ignored). */
  readonly data: Uint8Array | string;
  /** Pause after this write, in ms. */
  readonly pauseMs?: number;
  /** Fds to pass with this write (SCM_RIGHTS; Unix endpoints only). */
  readonly fds?: readonly number[];
}

export interface Reply {
  /** Everything read, as lower-case hex. */
  readonly hex: string;
  /** The server closed the connection. */
  readonly eof: boolean;
  /**
   * How long the client took from the start of its first write to the end of its last
   * (pauses included): an upper bound on the time between the first and the last byte
   * reaching the server.
   */
  readonly sendMs?: number;
}

export interface ExchangeOptions {
  /** Stop reading once nothing arrived for this long after the last write (default 150). */
  readonly quietMs?: number;
  /**
   * The same while nothing at all has arrived (default 1000): "no reply" is only
   * concluded after a longer wait, so a loaded machine does not fake one.
   */
  readonly emptyQuietMs?: number;
  /** Give up after this long in total (default 10 s). */
  readonly maxMs?: number;
}

export const bytes = (d: Uint8Array | string): Buffer =>
  typeof d === 'string' ? Buffer.from(d.replace(/\s+/g, ''), 'hex') : Buffer.from(d);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `hex` plus `|EOF` when the server closed: the form expectations are written in. */
export function render(r: Reply): string {
  return r.hex + (r.eof ? '|EOF' : '');
}

/** An expectation string: hex with optional whitespace, optional `|EOF`. */
export function norm(s: string): string {
  return s.replace(/\s+/g, '').toLowerCase().replace('|eof', '|EOF');
}

interface Link {
  write(b: Buffer, fds: readonly number[]): Promise<void>;
  close(): void;
}

/**
 * Connects; a Unix connect fails with EAGAIN while the server's backlog (1, as swtpm's)
 * is full of clients it has not accepted yet: try again, as a blocking connect would wait.
 */
async function connectNet(
  ep: Endpoint,
  onData: (b: Buffer) => void,
  onEnd: () => void,
): Promise<Link> {
  for (let i = 0; ; i++) {
    try {
      return await connectOnce(ep, onData, onEnd);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || i >= 500) throw e;
      await sleep(10);
    }
  }
}

function connectOnce(ep: Endpoint, onData: (b: Buffer) => void, onEnd: () => void): Promise<Link> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    let connected = false;
    s.on('data', onData);
    // 'end' (the server's FIN) comes in the same loop phase as data; 'close' later.
    s.on('end', onEnd);
    s.on('close', () => {
      if (connected) onEnd();
    });
    s.on('error', (e) => {
      if (!connected) reject(e);
    });
    const ready = () => {
      connected = true;
      s.setNoDelay(true);
      resolve({
        write: (b, fds) => {
          if (fds.length > 0) throw new Error('fds need a Unix endpoint with passFds');
          return new Promise<void>((r) => {
            if (s.destroyed || !s.writable) return r();
            s.write(b, () => r());
          });
        },
        close: () => s.destroy(),
      });
    };
    if ('port' in ep) s.connect(ep.port, '127.0.0.1', ready);
    else s.connect(ep.path, ready);
  });
}

function connectFdChannel(path: string, onData: (b: Buffer) => void, onEnd: () => void): Link {
  const fd = L.socket(L.SOCK_STREAM);
  L.connect(fd, path);
  const ch = new FdChannel(fd, {
    onMessage: (m) => {
      for (const f of m.fds) L.close(f);
      onData(m.data);
    },
    onClose: () => onEnd(),
  });
  return {
    write: (b, fds) => ch.write(b, fds).catch(() => {}),
    close: () => ch.close(),
  };
}

/**
 * Runs one exchange on a fresh connection. Writes go out in order (each awaited,
 * then its pause); reading runs throughout. Returns when the server closed, or once
 * it stayed quiet for `quietMs` after the last write.
 */
export async function exchange(
  ep: Endpoint,
  steps: readonly Step[],
  o: ExchangeOptions = {},
): Promise<Reply> {
  const quiet = o.quietMs ?? 150;
  const chunks: Buffer[] = [];
  let eof = false;
  let last = Date.now();
  let wake: (() => void) | undefined;
  const onData = (b: Buffer) => {
    chunks.push(b);
    last = Date.now();
    wake?.();
  };
  const onEnd = () => {
    eof = true;
    wake?.();
  };
  const useFds = steps.some((s) => (s.fds?.length ?? 0) > 0);
  const link =
    useFds && 'path' in ep
      ? connectFdChannel(ep.path, onData, onEnd)
      : await connectNet(ep, onData, onEnd);
  const start = Date.now();
  let sent = start;
  let result: Reply;
  try {
    for (const [i, s] of steps.entries()) {
      // Closed before the last piece went out: the server stopped waiting meanwhile.
      if (eof) {
        sent = Date.now();
        break;
      }
      await link.write(bytes(s.data), s.fds ?? []);
      last = Date.now();
      if (i === steps.length - 1) sent = last;
      if (s.pauseMs) await sleep(s.pauseMs);
    }
    last = Math.max(last, Date.now());
    while (!eof) {
      const now = Date.now();
      const q = chunks.length === 0 ? Math.max(quiet, o.emptyQuietMs ?? 1000) : quiet;
      const left = Math.min(last + q - now, start + (o.maxMs ?? 10000) - now);
      if (left <= 0) {
        // After a stall (a loaded machine) the event loop runs expired timers before it
        // reads sockets: a reply or EOF already waiting must count before "quiet" does
        // (two turns: a socket's 'close' comes in the phase after setImmediate's).
        const seen = chunks.length;
        for (let turn = 0; turn < 2; turn++) await new Promise<void>((r) => setImmediate(r));
        if (eof || chunks.length !== seen) continue;
        break;
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      wake = undefined;
    }
    // Before close(): closing an FdChannel reports through the same callback.
    result = { hex: Buffer.concat(chunks).toString('hex'), eof, sendMs: sent - start };
  } finally {
    link.close();
  }
  return result;
}

/** Control request bytes: BE32 code followed by `body` (hex or bytes). */
export function cmd(code: number, body: Uint8Array | string = ''): Buffer {
  const b = bytes(body);
  const out = Buffer.alloc(4 + b.length);
  out.writeUInt32BE(code, 0);
  b.copy(out, 4);
  return out;
}

export const u32 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

/**
 * Our end of a socketpair whose other end was passed with CMD_SET_DATAFD: the data
 * channel seen from the client side.
 */
export class FdPeer {
  private readonly ch: FdChannel;
  private readonly chunks: Buffer[] = [];
  private eof = false;

  constructor(fd: number) {
    this.ch = new FdChannel(fd, {
      onMessage: (m) => {
        for (const f of m.fds) L.close(f);
        this.chunks.push(m.data);
      },
      onClose: () => {
        this.eof = true;
      },
    });
  }

  /** Writes `data` (one write, one datagram) and collects the reply until quiet. */
  async exchange(data: Uint8Array | string, quietMs = 150): Promise<Reply> {
    this.chunks.length = 0;
    await this.ch.write(bytes(data)).catch(() => {});
    let seen = -1;
    for (let waited = 0; !this.eof && waited < 10000; waited += 25) {
      const n = this.chunks.reduce((a, c) => a + c.length, 0);
      if (n !== seen) {
        seen = n;
        waited = 0;
      }
      if (waited >= (n === 0 ? Math.max(quietMs, 1000) : quietMs)) break;
      await sleep(25);
    }
    return { hex: Buffer.concat(this.chunks).toString('hex'), eof: this.eof };
  }

  close(): void {
    this.ch.close();
  }
}
