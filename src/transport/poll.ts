/**
 * Readiness of fds on Node's own event loop: what FdChannel, the listeners
 * (acceptor.ts, unix-server.ts) and the CUSE device (cuse.ts) wait on instead of a
 * thread.
 *
 * Every fd is watched through one epoll instance of our own, and libuv watches only
 * that epoll fd (one uv_poll through `koffi.node.poll`). When it is readable, one
 * epoll_wait() hands over every ready fd at once. A uv_poll per fd did the same job,
 * but each of its callbacks entered JavaScript separately and built a fresh event
 * object through N-API: with 100 busy TPMs in one process that was about an eighth of
 * the server's CPU time (docs/performance.md, "Many TPMs in one process").
 *
 * The callbacks keep uv_poll's meaning, so the callers did not change: level-triggered;
 * hang-up reports the events the watcher asked for; an error condition (EPOLLERR
 * without EPOLLPRI) stops the watcher and reports status -EBADF, as libuv does.
 */
import { declareOnce, nativeLibc } from '../engine/native.js';
import * as L from './libc.js';

export type PollHandle = {
  start(opts: { readable?: boolean; writable?: boolean }, cb: PollCallback): void;
  stop(): void;
  close(): void;
};
/** status < 0 is a negated errno (-EBADF for an error condition on the fd). */
export type PollCallback = (status: number, ev: PollEvents) => void;
export type PollEvents = { readonly readable: boolean; readonly writable: boolean };

const EPOLLIN = 0x1;
const EPOLLPRI = 0x2;
const EPOLLOUT = 0x4;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLL_CLOEXEC = 0o2000000;
const EBADF = 9;
const ENOENT = 2;
/** Ready fds taken per epoll_wait(); more stay ready and come with the next loop turn. */
const BATCH = 256;
/** `struct epoll_event` is packed on x86_64 (12 bytes), naturally aligned elsewhere. */
const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const DATA_OFF = process.arch === 'x64' ? 4 : 8;

/** The events objects callbacks get: shared and frozen, nothing is allocated per event. */
const EVENTS: readonly PollEvents[] = [
  Object.freeze({ readable: false, writable: false }),
  Object.freeze({ readable: true, writable: false }),
  Object.freeze({ readable: false, writable: true }),
  Object.freeze({ readable: true, writable: true }),
];

interface EpollLibc {
  create1: (flags: number) => number;
  ctl: (epfd: number, op: number, fd: number, ev: Uint8Array | null) => number;
  wait: (epfd: number, evs: Uint8Array, max: number, timeout: number) => number;
}

function epollLibc(): EpollLibc {
  const c = nativeLibc();
  return {
    create1: c.func('int epoll_create1(int flags)'),
    ctl: c.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
    wait: c.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
  };
}

/** One watched fd. */
class Watch implements PollHandle {
  /** EPOLLIN/EPOLLOUT wanted now; 0 while stopped (then not in the epoll set). */
  mask = 0;
  cb: PollCallback;
  closed = false;
  constructor(
    readonly group: PollGroup,
    readonly fd: number,
    readonly id: number,
    cb: PollCallback,
  ) {
    this.cb = cb;
  }

  start(opts: { readable?: boolean; writable?: boolean }, cb: PollCallback): void {
    if (this.closed) throw new Error(`poll on fd ${this.fd} is closed`);
    this.cb = cb;
    this.group.watch(this, (opts.readable ? EPOLLIN : 0) | (opts.writable ? EPOLLOUT : 0));
  }

  stop(): void {
    if (!this.closed) this.group.watch(this, 0);
  }

  close(): void {
    if (this.closed) return;
    this.group.watch(this, 0);
    this.closed = true;
  }
}

/** The process's epoll set and the one uv_poll that watches it. */
class PollGroup {
  private readonly sys = declareOnce(epollLibc);
  private readonly epfd: number;
  private readonly events = new Uint8Array(BATCH * EVENT_SIZE);
  private readonly view = new DataView(this.events.buffer);
  private readonly ctlEvent = new Uint8Array(EVENT_SIZE);
  private readonly ctlView = new DataView(this.ctlEvent.buffer);
  /** Watches in the epoll set, by id (an fd number can be reused within one batch). */
  private readonly active = new Map<number, Watch>();
  private nextId = 1;
  private uv: PollHandle | undefined;
  private armed = false;
  private readonly onReady = (status: number): void => this.dispatch(status);

  constructor() {
    const fd = this.sys.create1(EPOLL_CLOEXEC);
    if (fd < 0) throw new L.SysError('epoll_create1', L.koffi().errno());
    this.epfd = fd;
  }

  add(fd: number, cb: PollCallback): Watch {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Watch(this, fd, id, cb);
  }

  /** Sets what `w` waits for (0: nothing, out of the epoll set). */
  watch(w: Watch, mask: number): void {
    if (mask === w.mask) return;
    const op = mask === 0 ? EPOLL_CTL_DEL : w.mask === 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (op !== EPOLL_CTL_DEL) {
      this.ctlView.setUint32(0, mask, true);
      this.ctlView.setUint32(DATA_OFF, w.id, true);
      this.ctlView.setUint32(DATA_OFF + 4, 0, true);
    }
    let rc = this.sys.ctl(this.epfd, op, w.fd, op === EPOLL_CTL_DEL ? null : this.ctlEvent);
    // DEL of an fd closed behind our back (EBADF, ENOENT) leaves nothing to remove.
    if (rc < 0 && op !== EPOLL_CTL_DEL) {
      let e = L.koffi().errno();
      // A MOD after the file was closed elsewhere finds no entry: the fd is added anew.
      if (op === EPOLL_CTL_MOD && e === ENOENT) {
        rc = this.sys.ctl(this.epfd, EPOLL_CTL_ADD, w.fd, this.ctlEvent);
        if (rc < 0) e = L.koffi().errno();
      }
      if (rc < 0) throw new L.SysError('epoll_ctl', e);
    }
    w.mask = mask;
    if (mask === 0) this.active.delete(w.id);
    else this.active.set(w.id, w);
    this.arm();
  }

  /**
   * libuv watches the epoll fd only while some fd is watched: an idle process may exit.
   * The one handle is stopped, not closed, in between, and held here for the process'
   * life (a handle nobody references would be closed by its finalizer).
   */
  private arm(): void {
    const want = this.active.size > 0;
    if (want === this.armed) return;
    this.armed = want;
    if (!want) {
      this.uv?.stop();
      return;
    }
    if (this.uv !== undefined) {
      this.uv.start({ readable: true }, this.onReady);
      return;
    }
    const k = L.koffi() as unknown as {
      node: { poll(fd: number, o: object, cb: (status: number) => void): PollHandle | null };
    };
    const h = k.node.poll(this.epfd, { readable: true }, this.onReady);
    if (!h) throw new Error(`uv_poll on epoll fd ${this.epfd} failed`);
    this.uv = h;
  }

  private dispatch(status: number): void {
    if (status < 0) throw new L.SysError('uv_poll(epoll)', -status);
    const n = this.sys.wait(this.epfd, this.events, BATCH, 0);
    if (n < 0) {
      const e = L.koffi().errno();
      if (e === 4) return; // EINTR: the fds are still ready next turn
      throw new L.SysError('epoll_wait', e);
    }
    const v = this.view;
    for (let i = 0; i < n; i++) {
      const off = i * EVENT_SIZE;
      const w = this.active.get(v.getUint32(off + DATA_OFF, true));
      // Gone or stopped by an earlier callback of this batch.
      if (w === undefined || w.mask === 0) continue;
      let ev = v.getUint32(off, true);
      if (ev & EPOLLERR && !(ev & EPOLLPRI)) {
        this.watch(w, 0);
        w.cb(-EBADF, EVENTS[0]!);
        continue;
      }
      if (ev & (EPOLLERR | EPOLLHUP)) ev |= w.mask;
      ev &= w.mask;
      if (ev === 0) continue;
      w.cb(0, EVENTS[(ev & EPOLLIN ? 1 : 0) | (ev & EPOLLOUT ? 2 : 0)]!);
    }
  }
}

function pollGroup(): PollGroup {
  return new PollGroup();
}

/** Starts watching `fd`; one handle per fd, restarted to change events. */
export function startPoll(
  fd: number,
  opts: { readable?: boolean; writable?: boolean },
  cb: PollCallback,
): PollHandle {
  const w = declareOnce(pollGroup).add(fd, cb);
  w.start(opts, cb);
  return w;
}

/** Stops and releases a handle from startPoll(); do this before close(fd). */
export function closePoll(h: PollHandle): void {
  h.close();
}
