/**
 * The /dev/cuse channel: moves whole FUSE messages between the kernel and a session,
 * knowing nothing of what they mean. One read() returns exactly one request; one
 * write() delivers exactly one reply. The fd is non-blocking and watched on the event
 * loop (poll.ts, as for Unix sockets), so requests are read there; /dev/cuse supports
 * poll() like /dev/fuse.
 *
 * Tests hand it one end of a SOCK_SEQPACKET socketpair instead: a datagram is then
 * one request or one reply, exactly as on the real device.
 */
import { constants, closeSync, openSync, readSync, writeSync } from 'node:fs';
import { setNonBlocking } from './libc.js';
import { type PollHandle, closePoll, startPoll } from './poll.js';

/** Where the kernel's CUSE server side lives (misc device 10,203; module `cuse`). */
export const CUSE_DEVICE = '/dev/cuse';

/**
 * The read buffer: the kernel refuses reads smaller than max(8192, 80 + max_write)
 * with EINVAL, so it must exceed what the session announces as max_write.
 */
export const CUSE_READ_BUFFER = 132 * 1024;

export type CuseCloseReason = 'hangup' | 'error' | 'local';

export interface CuseChannelOptions {
  readonly bufferSize?: number;
  /** One request (a copy the callee may keep). */
  readonly onRequest: (req: Buffer) => void;
  readonly onClose?: (reason: CuseCloseReason, err?: Error) => void;
}

/** errno names that say the request the reply was for is gone (interrupted, aborted). */
const STALE_REPLY = new Set(['ENOENT']);

/**
 * @example
 * const ch = CuseChannel.open({ onRequest: (req) => session.handle(req) });
 * ch.write(reply);
 */
export class CuseChannel {
  readonly fd: number;
  private readonly buf: Buffer;
  private readonly onRequest: CuseChannelOptions['onRequest'];
  private readonly onClose: CuseChannelOptions['onClose'];
  private poll: PollHandle | undefined;
  private isClosed = false;

  /** Opens /dev/cuse (root and the `cuse` module needed). Throws the open() error. */
  static open(opts: CuseChannelOptions, path = CUSE_DEVICE): CuseChannel {
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    return new CuseChannel(fd, opts);
  }

  /** Takes ownership of `fd` (made non-blocking) and starts reading. */
  constructor(fd: number, opts: CuseChannelOptions) {
    this.fd = fd;
    this.buf = Buffer.alloc(opts.bufferSize ?? CUSE_READ_BUFFER);
    this.onRequest = opts.onRequest;
    this.onClose = opts.onClose;
    setNonBlocking(fd);
    this.poll = startPoll(fd, { readable: true }, (status) => {
      if (status < 0) this.finish('error', new Error(`poll on /dev/cuse failed: ${status}`));
      else this.drain();
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Reads every queued request (the poll is level-triggered; draining saves wake-ups). */
  private drain(): void {
    while (!this.isClosed) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
        if (code === 'EINTR') continue;
        // ENODEV: the connection was aborted or the kernel side went away.
        this.finish(code === 'ENODEV' ? 'hangup' : 'error', e as Error);
        return;
      }
      if (n === 0) {
        this.finish('hangup', undefined);
        return;
      }
      this.onRequest(Buffer.from(this.buf.subarray(0, n)));
    }
  }

  /**
   * Writes one reply. A reply to a request that no longer exists (interrupted, or the
   * caller was killed) fails with ENOENT in the kernel; that is not an error here.
   */
  write(reply: Uint8Array): void {
    if (this.isClosed) return;
    try {
      writeSync(this.fd, reply);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (STALE_REPLY.has(code)) return;
      this.finish(code === 'ENODEV' || code === 'EPIPE' ? 'hangup' : 'error', e as Error);
    }
  }

  /** Closes the fd; the kernel then removes /dev/<name>. Idempotent. */
  close(): void {
    this.finish('local', undefined);
  }

  private finish(reason: CuseCloseReason, err: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.poll) {
      closePoll(this.poll);
      this.poll = undefined;
    }
    try {
      closeSync(this.fd);
    } catch {
      // already gone
    }
    this.onClose?.(reason, err);
  }
}
