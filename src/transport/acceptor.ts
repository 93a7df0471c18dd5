/**
 * accept() on demand, as swtpm does: its main loop polls the listening socket only
 * while it has no client, so later clients wait in the kernel's backlog (completed TCP
 * handshakes or pending Unix connects) and the process holds no fd for them. Node's
 * net.Server accepts every connection as soon as it arrives and cannot be paused, so
 * the listening fd is watched by poll.ts and accepted with accept4().
 */
import { chmodSync, chownSync, unlinkSync } from 'node:fs';
import * as L from './libc.js';
import { type PollHandle, closePoll, startPoll } from './poll.js';

export interface UnixBindOptions {
  /** Permission bits; default 0o770 (swtpm's default). */
  readonly mode?: number | undefined;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
  /** Default 1, as swtpm. */
  readonly backlog?: number | undefined;
}

/**
 * A listening AF_UNIX stream socket at `path` (whatever was there is unlinked first,
 * as swtpm does). The mode and owner are set between bind() and listen(): until
 * listen() every connect() is refused, so nobody can connect while the socket file
 * still has the umask's permissions.
 */
export function bindUnixSocket(path: string, o: UnixBindOptions = {}): number {
  const fd = L.socket(L.SOCK_STREAM);
  try {
    unlinkQuiet(path);
    L.bind(fd, path);
    chmodSync(path, o.mode ?? 0o770);
    if (o.uid !== undefined || o.gid !== undefined) chownSync(path, o.uid ?? -1, o.gid ?? -1);
    L.listen(fd, o.backlog ?? 1);
    return fd;
  } catch (e) {
    L.close(fd);
    throw e;
  }
}

export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * Watches a listening socket (owned from now on) and accepts ONE client each time
 * `next()` is called; the accepted fd (non-blocking, close-on-exec) goes to `onAccept`.
 *
 * @example
 * const acc = new Acceptor(listenFd, (fd) => {
 *   serve(fd, { onGone: () => acc.next() });
 * });
 * acc.next();
 */
export class Acceptor {
  readonly fd: number;
  private readonly onAccept: (fd: number) => void;
  private readonly onError: ((err: Error) => void) | undefined;
  private poll: PollHandle | undefined;
  private watching = false;
  private retry: NodeJS.Timeout | undefined;
  private isClosed = false;
  private readonly cb = (status: number): void => this.onReady(status);

  constructor(fd: number, onAccept: (fd: number) => void, onError?: (err: Error) => void) {
    L.setNonBlocking(fd);
    L.setCloexec(fd);
    this.fd = fd;
    this.onAccept = onAccept;
    this.onError = onError;
  }

  /** Accepts the next client as soon as one is pending. */
  next(): void {
    if (this.isClosed || this.watching) return;
    this.watching = true;
    if (this.poll) this.poll.start({ readable: true }, this.cb);
    else this.poll = startPoll(this.fd, { readable: true }, this.cb);
  }

  /** Stops watching and closes the listening fd (idempotent). */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    clearTimeout(this.retry);
    if (this.poll) closePoll(this.poll);
    this.poll = undefined;
    L.close(this.fd);
  }

  private stop(): void {
    this.watching = false;
    this.poll?.stop();
  }

  private onReady(status: number): void {
    if (this.isClosed || !this.watching) return;
    let fd: number;
    try {
      if (status < 0) throw new L.SysError('poll', -status);
      fd = L.accept(this.fd);
    } catch (e) {
      // EMFILE and the like: the pending client stays queued; try again shortly.
      this.stop();
      this.onError?.(e as Error);
      this.retry = setTimeout(() => this.next(), 100);
      return;
    }
    if (fd < 0) return; // EAGAIN: the pending client went away
    this.stop();
    this.onAccept(fd);
  }
}
