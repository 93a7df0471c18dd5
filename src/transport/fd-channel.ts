/**
 * FdChannel: a connected socket fd (AF_UNIX SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET,
 * or TCP) read with one recvmsg() per readiness event, so SCM_RIGHTS fds arrive with the
 * bytes they were sent with, and a datagram stays one message (a stream that takes no
 * fds is read with a plain recv()). Readiness comes from libuv (poll.ts), so it shares
 * Node's event loop.
 *
 * It moves bytes and fds only. The unit of delivery is what ONE recvmsg returned,
 * which is exactly swtpm's unit of work: a control request starts with one recvmsg,
 * a TPM command on a data fd is one read (control-channel.md §2.2, §3.2).
 */
import * as L from './libc.js';
import { type PollCallback, type PollHandle, closePoll, startPoll } from './poll.js';

/** What one recvmsg() delivered. */
export interface Message {
  /** The bytes (a copy; at most `bufferSize`). */
  data: Buffer;
  /** Fds from SCM_RIGHTS, close-on-exec. The receiver owns them and must close unwanted ones. */
  fds: number[];
  /** More fds were sent than `maxFds`; the kernel closed the excess. */
  ctrunc: boolean;
  /** A datagram longer than `bufferSize`; the kernel dropped its tail. */
  trunc: boolean;
}

/** Why a channel closed: peer hang-up / 0-byte read, an I/O error, or close() here. */
export type CloseReason = 'hangup' | 'error' | 'local';

export type SocketKind = 'stream' | 'dgram' | 'seqpacket';

export interface FdChannelOptions {
  /** recvmsg buffer size; one message is at most this long. Default 4104 (swtpm's ctrl buffer). */
  bufferSize?: number;
  /** Fds accepted per message. Default 8; 0 refuses fds (the kernel closes them, `ctrunc`). */
  maxFds?: number;
  /**
   * Called for each message while no read() is pending. While the returned promise is
   * pending the socket is not read (as swtpm, which serves one request at a time); the
   * handler may call read() for more bytes. A throw or rejection closes the channel.
   */
  onMessage?: (msg: Message, ch: FdChannel) => void | Promise<void>;
  /** Called once when the channel closes; `err` is set for 'error'. */
  onClose?: (reason: CloseReason, err: Error | undefined, ch: FdChannel) => void;
  /**
   * A stream peer half-closed (a 0-byte read): with this handler the channel stops
   * reading but stays open for writes until close() or end(), so a peer that sent its
   * request and then shutdown(SHUT_WR) still gets the answer. Without it the channel
   * closes ('hangup').
   */
  onEnd?: (ch: FdChannel) => void;
  /** The socket's type when the caller knows it (an accepted client): saves a getsockopt(). */
  kind?: SocketKind;
}

interface PendingWrite {
  buf: Uint8Array;
  fds: readonly number[];
  resolve: () => void;
  reject: (e: Error) => void;
}

const KINDS: Record<number, SocketKind> = {
  [L.SOCK_STREAM]: 'stream',
  [L.SOCK_DGRAM]: 'dgram',
  [L.SOCK_SEQPACKET]: 'seqpacket',
};

const noop = (): void => {};

function closedError(): Error {
  return Object.assign(new Error('channel is closed'), { code: 'ERR_CHANNEL_CLOSED' });
}

/**
 * A connected socket fd, owned by this object (close() closes it).
 *
 * @example
 * const [mine, theirs] = socketPair('dgram');
 * const ch = new FdChannel(mine, {
 *   bufferSize: 4105,
 *   onMessage: async (msg, ch) => { await ch.write(handle(msg.data)); },
 *   onClose: (reason) => console.log('data peer gone:', reason),
 * });
 */
export class FdChannel {
  readonly fd: number;
  readonly kind: SocketKind;
  private readonly mb: L.MsgBuffer;
  private readonly onMessage: FdChannelOptions['onMessage'];
  private readonly onClose: FdChannelOptions['onClose'];
  private readonly onEnd: FdChannelOptions['onEnd'];
  /** The peer half-closed; nothing more is read. */
  private eof = false;
  /** end() was called: close once the write queue is empty. */
  private ending = false;
  private poll: PollHandle | undefined;
  private polling = ''; // events the poll handle is started with: '', 'r', 'w', 'rw'
  private wantWrite = false;
  private readonly pollCb: PollCallback = (status, ev) => this.onPoll(status, ev);
  private busy = false;
  private paused = false;
  private reader: ((m: Message | null) => void) | undefined;
  private readTimer: NodeJS.Timeout | undefined;
  private readonly writes: PendingWrite[] = [];
  private isClosed = false;

  /** Takes ownership of `fd`; throws SysError (ENOTSOCK) if it is not a socket. */
  constructor(fd: number, opts: FdChannelOptions = {}) {
    const kind = opts.kind ?? KINDS[L.socketType(fd)];
    if (!kind)
      throw Object.assign(new Error(`fd ${fd}: unsupported socket type`), { code: 'ERR_FD_TYPE' });
    this.fd = fd;
    this.kind = kind;
    this.mb = new L.MsgBuffer(opts.bufferSize ?? 4104, opts.maxFds ?? 8);
    this.onMessage = opts.onMessage;
    this.onClose = opts.onClose;
    this.onEnd = opts.onEnd;
    this.update();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Bytes from write() are still waiting for room in the socket buffer. */
  get writePending(): boolean {
    return this.writes.length > 0;
  }

  /**
   * Waits for the next recvmsg() result. Resolves null when nothing arrived within
   * `timeoutMs` (default: no limit) or when the channel closed meanwhile (see `closed`).
   * One read at a time; while it is pending, onMessage is not called.
   */
  read(timeoutMs?: number): Promise<Message | null> {
    if (this.isClosed || this.eof) return Promise.resolve(null);
    if (this.reader) return Promise.reject(new Error('read() already pending'));
    return new Promise((resolve) => {
      this.reader = resolve;
      if (timeoutMs !== undefined) {
        this.readTimer = setTimeout(() => this.settleRead(null), Math.max(0, timeoutMs));
      }
      this.update();
    });
  }

  /**
   * Sends all of `data` (and `fds`, as SCM_RIGHTS with the first bytes). Writes are
   * queued in call order; a datagram socket sends `data` as one datagram. Resolves
   * when the kernel took every byte; rejects with SysError (EPIPE, ECONNREFUSED, …),
   * after which the channel is closed, or with ERR_CHANNEL_CLOSED.
   */
  write(data: Uint8Array, fds: readonly number[] = []): Promise<void> {
    if (this.isClosed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      this.writes.push({ buf: data, fds, resolve, reject });
      if (this.writes.length === 1) this.flush();
    });
  }

  /**
   * write() without a promise, for a caller that waits for `drained` instead (a reply on
   * a request/response channel: no promise and no microtask per reply). Returns true
   * when the kernel took every byte at once; otherwise the rest is queued behind earlier
   * writes and `drained` runs once it went out. A failed send closes the channel
   * (onClose), as with write().
   */
  offer(data: Uint8Array, drained: () => void): boolean {
    if (this.isClosed) return true;
    let rest = data;
    if (this.writes.length === 0 && data.length > 0) {
      let n: number;
      try {
        n = L.send(this.fd, data, L.MSG_DONTWAIT | L.MSG_NOSIGNAL);
      } catch (e) {
        this.finish('error', e as Error);
        return true;
      }
      if (n === data.length) return true;
      if (n > 0) rest = data.subarray(n); // a stream took part of it
    }
    const done = (): void => {
      if (this.writes.length === 0) drained();
    };
    this.writes.push({ buf: rest, fds: [], resolve: done, reject: noop });
    if (this.writes.length === 1) this.flush();
    return false;
  }

  /** Stops onMessage delivery (bytes wait in the kernel) until resume(); read() still works. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.update();
  }

  /** Closes the fd (idempotent). Pending read() resolves null, pending writes reject. */
  close(): void {
    this.finish('local', undefined);
  }

  /** Closes the fd once every queued write went out (or failed). */
  end(): void {
    this.ending = true;
    if (this.writes.length === 0) this.close();
  }

  private settleRead(m: Message | null): void {
    const r = this.reader;
    if (!r) return;
    this.reader = undefined;
    clearTimeout(this.readTimer);
    this.readTimer = undefined;
    r(m);
    this.update();
  }

  private wantsRead(): boolean {
    if (this.eof) return false;
    return (
      this.reader !== undefined || (this.onMessage !== undefined && !this.busy && !this.paused)
    );
  }

  /**
   * Starts, changes or stops the poll (poll.ts) so that it watches what is needed. Dropping
   * POLLIN is lazy (done when an unwanted readable event arrives): a request/response
   * exchange then costs no epoll_ctl() calls at all.
   */
  private update(lazy = true): void {
    if (this.isClosed) return;
    const r = this.wantsRead() || (lazy && this.polling.startsWith('r'));
    const w = this.wantWrite;
    const want = (r ? 'r' : '') + (w ? 'w' : '');
    if (want === this.polling) return;
    this.polling = want;
    if (want === '') {
      this.poll?.stop();
      return;
    }
    const opts = { readable: r, writable: w };
    if (this.poll) this.poll.start(opts, this.pollCb);
    else this.poll = startPoll(this.fd, opts, this.pollCb);
  }

  private onPoll(status: number, ev: { readable: boolean; writable: boolean }): void {
    if (this.isClosed) return;
    if (status < 0) {
      this.finish('error', new L.SysError('poll', -status));
      return;
    }
    if (ev.writable && this.writes.length > 0) this.flush();
    if (!ev.readable || this.isClosed || !this.polling.startsWith('r')) return;
    if (this.wantsRead()) this.receive();
    else this.update(false); // busy and no read(): leave the bytes in the kernel
  }

  private receive(): void {
    let r: L.RecvResult | null;
    try {
      r =
        this.kind === 'stream' && this.mb.maxFds === 0
          ? this.mb.recvPlain(this.fd)
          : this.mb.recv(this.fd);
    } catch (e) {
      const err = e as L.SysError;
      this.finish(err.code === 'ECONNRESET' ? 'hangup' : 'error', err);
      return;
    }
    if (r === null) return; // spurious wake-up (EAGAIN)
    // 0 bytes: end of stream. swtpm also treats a 0-byte read on a datagram fd as
    // the end of the connection, so an empty datagram closes the channel too.
    if (r.n === 0) {
      for (const fd of r.fds) L.close(fd);
      if (this.kind !== 'stream' || this.onEnd === undefined) {
        this.finish('hangup', undefined);
        return;
      }
      this.eof = true;
      this.settleRead(null);
      this.update();
      this.onEnd(this);
      return;
    }
    const msg: Message = { data: this.mb.data(r.n), fds: r.fds, ctrunc: r.ctrunc, trunc: r.trunc };
    if (this.reader) {
      this.settleRead(msg);
      return;
    }
    this.dispatch(msg);
  }

  private dispatch(msg: Message): void {
    const fail = (e: unknown): void =>
      this.finish('error', e instanceof Error ? e : new Error(String(e)));
    let ret: void | Promise<void>;
    try {
      ret = this.onMessage?.(msg, this);
    } catch (e) {
      fail(e);
      return;
    }
    if (!ret || typeof ret.then !== 'function') return;
    this.busy = true;
    this.update();
    ret.then(() => {
      this.busy = false;
      this.update();
    }, fail);
  }

  /** Sends as much of the queue as the socket buffer takes, then waits for POLLOUT. */
  private flush(): void {
    while (this.writes.length > 0 && !this.isClosed) {
      const w = this.writes[0]!;
      let n: number;
      try {
        n = this.sendOnce(w);
      } catch (e) {
        this.finish('error', e as Error);
        return;
      }
      if (n < 0) {
        this.wantWrite = true; // EAGAIN: socket buffer full
        this.update();
        return;
      }
      if (this.kind === 'stream' && n < w.buf.length) {
        w.buf = w.buf.subarray(n);
        w.fds = []; // the fds went with the first byte
        continue;
      }
      this.writes.shift();
      w.resolve();
    }
    if (this.ending && this.writes.length === 0) {
      this.close();
      return;
    }
    if (this.wantWrite) {
      this.wantWrite = false;
      this.update();
    }
  }

  private sendOnce(w: PendingWrite): number {
    const flags = L.MSG_DONTWAIT | L.MSG_NOSIGNAL;
    if (w.fds.length === 0) return L.send(this.fd, w.buf, flags);
    // sendmsg copies through the native block, so a stream write with fds sends at most
    // bufferSize bytes there and the rest with send(); a datagram must fit whole.
    const head = this.kind === 'stream' ? w.buf.subarray(0, this.mb.size) : w.buf;
    return this.mb.send(this.fd, head, w.fds);
  }

  private finish(reason: CloseReason, err: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.poll) {
      closePoll(this.poll); // a closed fd must not stay in the epoll set
      this.poll = undefined;
    }
    try {
      L.close(this.fd);
    } catch {
      // EBADF: nothing left to release
    }
    this.mb.free();
    const r = this.reader;
    this.reader = undefined;
    clearTimeout(this.readTimer);
    r?.(null);
    const e = err ?? closedError();
    for (const w of this.writes.splice(0)) w.reject(e);
    this.onClose?.(reason, err, this);
  }
}

/** Two connected AF_UNIX sockets (close-on-exec). */
export function socketPair(kind: SocketKind): [number, number] {
  const t = kind === 'stream' ? L.SOCK_STREAM : kind === 'dgram' ? L.SOCK_DGRAM : L.SOCK_SEQPACKET;
  return L.socketpair(t);
}

/** close(2) of an fd this process owns (e.g. a received fd it does not want). */
export function closeFd(fd: number): void {
  L.close(fd);
}
