/**
 * A Unix stream socket server that serves ONE client at a time, like swtpm's
 * `--ctrl type=unixio` and `--server type=unixio` (control-channel.md §2.1, §3.1):
 * listen() backlog 1, and while a client is connected the listening socket is not
 * polled, so later clients complete connect() in the kernel backlog and wait; when
 * the client goes, the next one is accepted and its already-sent bytes are read.
 *
 * Each client is an {@link FdChannel}: one recvmsg per readiness event (4104 bytes by
 * default, swtpm's control buffer), SCM_RIGHTS fds delivered with the bytes.
 */
import { bindUnixSocket, unlinkQuiet } from './acceptor.js';
import { type CloseReason, FdChannel, type FdChannelOptions, type Message } from './fd-channel.js';
import * as L from './libc.js';
import { type PollHandle, closePoll, startPoll } from './poll.js';

export interface UnixServerOptions {
  /** Socket path: unlinked, bound, chmod()ed to `mode`; removed by closeServer(). */
  path?: string;
  /** Permission bits applied with chmod after bind. Default 0o770 (swtpm's default). */
  mode?: number;
  /** chown() of the socket path (either may be given alone). */
  uid?: number;
  gid?: number;
  /** An inherited listening socket (swtpm `fd=`). */
  fd?: number;
  /** An already-connected client socket (swtpm `clientfd=`): no listener at all. */
  clientFd?: number;
  /** Default 1, as swtpm. */
  backlog?: number;
  /** Per-client recvmsg buffer size. Default 4104. */
  bufferSize?: number;
  /** Fds accepted per message. Default 8. */
  maxFds?: number;
  /** A client was accepted (for `clientFd`: in a microtask after construction, before any message). */
  onConnection?: (ch: FdChannel) => void;
  /** See FdChannelOptions.onMessage: while its promise is pending the client is not read. */
  onMessage: (msg: Message, ch: FdChannel) => void | Promise<void>;
  /** The client half-closed; see FdChannelOptions.onEnd. */
  onEnd?: (ch: FdChannel) => void;
  /** The client is gone; the listener (if any) is polled again after this returns. */
  onClose?: (reason: CloseReason, err: Error | undefined, ch: FdChannel) => void;
  /** accept() failed (e.g. EMFILE); accepting resumes after 100 ms. */
  onError?: (err: Error) => void;
  /**
   * Listen (or hold `clientFd`) but neither accept nor read until {@link UnixServer.start}:
   * clients wait in the kernel's backlog meanwhile.
   */
  paused?: boolean;
}

/**
 * @example
 * const srv = new UnixServer({
 *   path: '/run/tpm/ctrl.sock',
 *   onMessage: async (msg, ch) => {
 *     const more = await ch.read(500); // wait for the rest of a request
 *     await ch.write(Buffer.from([0, 0, 0, 0]));
 *     for (const fd of msg.fds) closeFd(fd);
 *   },
 * });
 * // ... later
 * srv.closeServer();
 */
export class UnixServer {
  /** The bound path (only when `path` was given). */
  readonly path: string | undefined;
  /** The listening socket, or -1 in `clientFd` mode. */
  readonly listenFd: number;
  private readonly opts: UnixServerOptions;
  private poll: PollHandle | undefined;
  private current: FdChannel | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private isClosed = false;
  private started = false;

  /** Binds and listens synchronously; throws SysError (EADDRINUSE, EACCES, …) on failure. */
  constructor(opts: UnixServerOptions) {
    this.opts = opts;
    const given = [opts.path, opts.fd, opts.clientFd].filter((v) => v !== undefined).length;
    if (given !== 1) throw new TypeError('exactly one of path, fd, clientFd is required');
    if (opts.clientFd !== undefined) {
      this.path = undefined;
      this.listenFd = -1;
    } else {
      this.path = opts.path;
      this.listenFd = opts.fd ?? this.bindPath(opts.path!);
      L.setNonBlocking(this.listenFd);
      L.setCloexec(this.listenFd);
    }
    if (opts.paused !== true) this.start();
  }

  /** Begins accepting (or serving `clientFd`); idempotent, a no-op once closed. */
  start(): void {
    if (this.started || this.isClosed) return;
    this.started = true;
    const clientFd = this.opts.clientFd;
    if (clientFd === undefined) {
      this.pollListener(true);
      return;
    }
    const ch = this.wrap(clientFd);
    queueMicrotask(() => {
      if (this.current === ch && !ch.closed) this.opts.onConnection?.(ch);
    });
  }

  /** The connected client, if any. */
  get client(): FdChannel | null {
    return this.current;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Disconnects the current client (no-op without one); the next one is then accepted. */
  closeClient(): void {
    this.current?.close();
  }

  /** Closes the client and the listening socket, and unlinks `path`. Idempotent. */
  closeServer(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    clearTimeout(this.retryTimer);
    if (this.poll) closePoll(this.poll);
    this.poll = undefined;
    this.current?.close();
    // (a clientFd is owned from construction, but wrapped only by start())
    if (!this.started && this.opts.clientFd !== undefined) L.close(this.opts.clientFd);
    if (this.listenFd >= 0) L.close(this.listenFd);
    if (this.path !== undefined) unlinkQuiet(this.path);
  }

  private bindPath(path: string): number {
    const o = this.opts;
    return bindUnixSocket(path, { mode: o.mode, uid: o.uid, gid: o.gid, backlog: o.backlog });
  }

  /** The listener is watched only while no client is connected. */
  private pollListener(on: boolean): void {
    if (this.isClosed || this.listenFd < 0) return;
    if (!on) {
      this.poll?.stop();
      return;
    }
    const cb = (status: number): void => this.onListenReady(status);
    if (this.poll) this.poll.start({ readable: true }, cb);
    else this.poll = startPoll(this.listenFd, { readable: true }, cb);
  }

  private onListenReady(status: number): void {
    if (this.isClosed || this.current) return;
    let fd: number;
    try {
      if (status < 0) throw new L.SysError('poll', -status);
      fd = L.accept(this.listenFd);
    } catch (e) {
      this.pollListener(false);
      this.opts.onError?.(e as Error);
      this.retryTimer = setTimeout(() => this.pollListener(true), 100);
      return;
    }
    if (fd < 0) return; // EAGAIN: the pending client vanished
    this.pollListener(false);
    const ch = this.wrap(fd);
    if (!ch.closed) this.opts.onConnection?.(ch);
  }

  private wrap(fd: number): FdChannel {
    const o = this.opts;
    const chOpts: FdChannelOptions = {
      onMessage: o.onMessage,
      onClose: (reason, err, ch) => {
        if (this.current === ch) this.current = null;
        o.onClose?.(reason, err, ch);
        if (!this.current) this.pollListener(true);
      },
    };
    if (o.bufferSize !== undefined) chOpts.bufferSize = o.bufferSize;
    if (o.maxFds !== undefined) chOpts.maxFds = o.maxFds;
    if (o.onEnd !== undefined) chOpts.onEnd = o.onEnd;
    let ch: FdChannel;
    try {
      ch = new FdChannel(fd, chOpts);
    } catch (e) {
      L.close(fd);
      throw e;
    }
    this.current = ch;
    return ch;
  }
}

/**
 * Connects to a Unix stream socket without blocking the event loop. A full backlog
 * makes a non-blocking AF_UNIX connect() fail with EAGAIN (nothing is queued), so it
 * is retried every 10 ms until `timeoutMs` (default 5000).
 *
 * @example
 * const ch = await connectUnix('/run/tpm/ctrl.sock');
 * const [mine, theirs] = socketPair('stream');
 * await ch.write(Buffer.from([0, 0, 0, 0x10]), [theirs]); // CMD_SET_DATAFD
 * closeFd(theirs);
 * const reply = await ch.read(1000);
 */
export async function connectUnix(
  path: string,
  opts: Omit<FdChannelOptions, 'onMessage'> & { timeoutMs?: number } = {},
): Promise<FdChannel> {
  const fd = L.socket(L.SOCK_STREAM | L.SOCK_NONBLOCK);
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  try {
    while (L.connect(fd, path) < 0) {
      if (Date.now() >= deadline) throw new L.SysError('connect', 11, path);
      await new Promise((r) => setTimeout(r, 10));
    }
  } catch (e) {
    L.close(fd);
    throw e;
  }
  const { timeoutMs: _t, ...chOpts } = opts;
  return new FdChannel(fd, chOpts);
}
