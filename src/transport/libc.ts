/**
 * The few libc socket calls Node's `net` cannot do for us, bound through koffi:
 * SCM_RIGHTS fd passing (recvmsg/sendmsg), socketpair, and Unix sockets whose fds we
 * own. Linux only (x86_64 and aarch64 share every constant and layout used here).
 *
 * Nothing is loaded at import time: `koffi` is required and libc bound on the first
 * call, so processes that never touch a Unix control socket pay nothing.
 *
 * Every wrapper returns the raw result and throws {@link SysError} when the call
 * fails, except EAGAIN/EWOULDBLOCK on the non-blocking I/O calls, which return -1.
 */
import { getSystemErrorName } from 'node:util';
import type { Koffi } from '../engine/koffi.js';
import { declareOnce, nativeLibc } from '../engine/native.js';
type Fn = (...args: unknown[]) => number;

/** Linux values (asm-generic; identical on x86_64 and aarch64). */
export const AF_UNIX = 1;
export const AF_INET = 2;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_SEQPACKET = 5;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_TYPE = 3;
export const SO_REUSEADDR = 2;
export const SCM_RIGHTS = 1;
export const MSG_CTRUNC = 0x8;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
/** Received fds get FD_CLOEXEC atomically, so a spawned child never inherits them. */
export const MSG_CMSG_CLOEXEC = 0x40000000;
export const F_DUPFD_CLOEXEC = 1030;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const FD_CLOEXEC = 1;
export const O_NONBLOCK = 0o4000;
export const SHUT_RDWR = 2;

const EAGAIN = 11;
const EINTR = 4;

/** A failed system call. `code` is the errno name (`'EADDRINUSE'`), as in Node's errors. */
export class SysError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail?: string) {
    const code = errno > 0 ? getSystemErrorName(-errno) : 'UNKNOWN';
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${code}`);
    this.name = 'SysError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

interface Bound {
  koffi: Koffi;
  socket: Fn;
  socketpair: Fn;
  bind: Fn;
  listen: Fn;
  accept4: Fn;
  connect: Fn;
  recvmsg: Fn;
  recv: Fn;
  sendmsg: Fn;
  send: Fn;
  close: Fn;
  shutdown: Fn;
  fcntl: Fn;
  getsockopt: Fn;
  setsockopt: Fn;
  getsockname: Fn;
  malloc: (size: number) => bigint | null;
  free: (ptr: bigint) => void;
}

function lib(): Bound {
  return declareOnce(declareLibc);
}

/**
 * The libc functions, each declared on its first use: a declaration costs a server
 * start 20-25 µs, and a start uses about half of them. `ssize_t` and `size_t` are
 * `long`/`size_t` (64-bit on LP64); pointers travel as BigInt or as a Buffer (koffi
 * passes the Buffer's own memory, without copying).
 */
const FUNCTIONS: Readonly<Record<Exclude<keyof Bound, 'koffi'>, string>> = {
  socket: 'int socket(int, int, int)',
  socketpair: 'int socketpair(int, int, int, int *sv)',
  bind: 'int bind(int, const void *addr, uint32_t addrlen)',
  listen: 'int listen(int, int)',
  accept4: 'int accept4(int, void *addr, void *addrlen, int flags)',
  connect: 'int connect(int, const void *addr, uint32_t addrlen)',
  recvmsg: 'long recvmsg(int, void *msg, int flags)',
  recv: 'long recv(int, void *buf, size_t len, int flags)',
  sendmsg: 'long sendmsg(int, void *msg, int flags)',
  send: 'long send(int, const void *buf, size_t len, int flags)',
  close: 'int close(int)',
  shutdown: 'int shutdown(int, int)',
  fcntl: 'int fcntl(int, int, ...)',
  getsockopt: 'int getsockopt(int, int, int, void *val, uint32_t *len)',
  setsockopt: 'int setsockopt(int, int, int, const void *val, uint32_t len)',
  getsockname: 'int getsockname(int, void *addr, uint32_t *len)',
  malloc: 'void *malloc(size_t)',
  free: 'void free(void *)',
};

/** Bound once per process (engine/native.ts); each function on its first use. */
function declareLibc(koffi: Koffi): Bound {
  const c = nativeLibc();
  const bound = { koffi } as Bound;
  for (const [name, decl] of Object.entries(FUNCTIONS)) {
    Object.defineProperty(bound, name, {
      configurable: true,
      enumerable: true,
      get() {
        const fn = c.func(decl);
        Object.defineProperty(bound, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  }
  return bound;
}

/** The koffi module itself (loaded lazily with libc); for `koffi.node.poll`, errno and views. */
export function koffi(): Koffi {
  return lib().koffi;
}

/** Runs a call, retrying EINTR; throws SysError on -1 unless `eagainOk` and errno is EAGAIN. */
function sys(name: string, eagainOk: boolean, call: () => number): number {
  const k = lib().koffi;
  for (;;) {
    const r = Number(call());
    if (r >= 0) return r;
    const e = k.errno();
    if (e === EINTR) continue;
    if (eagainOk && e === EAGAIN) return -1;
    throw new SysError(name, e);
  }
}

/** `struct sockaddr_un` (110 bytes): sun_family then a NUL-terminated path of at most 107 bytes. */
export function sockaddrUn(path: string): Buffer {
  const p = Buffer.from(path);
  if (p.length === 0 || p.length > 107 || p.includes(0)) {
    throw Object.assign(new Error(`invalid Unix socket path (1..107 bytes): ${path}`), {
      code: 'ERR_SOCKET_PATH',
    });
  }
  const a = Buffer.alloc(110);
  a.writeUInt16LE(AF_UNIX, 0);
  p.copy(a, 2);
  return a;
}

export const socket = (type: number, family = AF_UNIX): number =>
  sys('socket', false, () => lib().socket(family, type | SOCK_CLOEXEC, 0));

/** Returns two connected AF_UNIX sockets of `type` (close-on-exec, blocking). */
export function socketpair(type: number): [number, number] {
  const sv = new Int32Array(2);
  sys('socketpair', false, () => lib().socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv));
  return [sv[0]!, sv[1]!];
}

export function bind(fd: number, path: string): void {
  const a = sockaddrUn(path);
  sys('bind', false, () => lib().bind(fd, a, a.length));
}

/** bind() to a ready-made socket address (`struct sockaddr_in` and the like). */
export const bindAddr = (fd: number, addr: Uint8Array): number =>
  sys('bind', false, () => lib().bind(fd, addr, addr.length));

/** getsockname() into a buffer of `size` bytes; returns the buffer. */
export function getsockname(fd: number, size: number): Uint8Array {
  const a = new Uint8Array(size);
  const len = new Uint32Array([size]);
  sys('getsockname', false, () => lib().getsockname(fd, a, len));
  return a;
}

/** setsockopt() of an `int` option. */
export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  intArg[0] = value;
  sys('setsockopt', false, () => lib().setsockopt(fd, level, name, intArg, 4));
}
/** The value of setsockoptInt(), copied by the kernel during the call. */
const intArg = new Int32Array(1);

export const listen = (fd: number, backlog: number): number =>
  sys('listen', false, () => lib().listen(fd, backlog));

/** Non-blocking, close-on-exec accepted socket, or -1 when no connection is pending. */
export const accept = (fd: number): number =>
  sys('accept4', true, () => lib().accept4(fd, null, null, SOCK_CLOEXEC | SOCK_NONBLOCK));

/** Returns 0, or -1 (EAGAIN) when a non-blocking Unix connect finds the backlog full. */
export function connect(fd: number, path: string): number {
  const a = sockaddrUn(path);
  return sys('connect', true, () => lib().connect(fd, a, a.length));
}

/**
 * The rest of sys() after a first attempt failed: errno is read at once (before any
 * other native call), EINTR retries through sys(), EAGAIN answers -1 when allowed.
 */
function afterFailure(name: string, eagainOk: boolean, call: () => number): number {
  const e = lib().koffi.errno();
  if (e === EINTR) return sys(name, eagainOk, call);
  if (eagainOk && e === EAGAIN) return -1;
  throw new SysError(name, e);
}

/** send() and recv() as bound, kept apart from the binding: they run once per TPM command. */
let sendFn: Fn | undefined;
let recvFn: Fn | undefined;

/** Bytes sent (may be short on a stream socket), or -1 when the socket buffer is full. */
export function send(fd: number, buf: Uint8Array, flags: number): number {
  sendFn ??= lib().send;
  const r = Number(sendFn(fd, buf, buf.length, flags));
  if (r >= 0) return r;
  return afterFailure('send', true, () => (sendFn as Fn)(fd, buf, buf.length, flags));
}

export const shutdown = (fd: number, how: number): number =>
  sys('shutdown', false, () => lib().shutdown(fd, how));

/** close(2) without retrying EINTR: on Linux the fd is released even then. */
export function close(fd: number): void {
  if (Number(lib().close(fd)) < 0) throw new SysError('close', lib().koffi.errno());
}

/** A close-on-exec duplicate of `fd` (F_DUPFD_CLOEXEC), numbered 3 or above. */
export const dupCloexec = (fd: number): number =>
  sys('fcntl', false, () => lib().fcntl(fd, F_DUPFD_CLOEXEC, 'int', 3));

export function setNonBlocking(fd: number): void {
  const fl = sys('fcntl', false, () => lib().fcntl(fd, F_GETFL));
  if (!(fl & O_NONBLOCK))
    sys('fcntl', false, () => lib().fcntl(fd, F_SETFL, 'int', fl | O_NONBLOCK));
}

export function setCloexec(fd: number): void {
  const fl = sys('fcntl', false, () => lib().fcntl(fd, F_GETFD));
  if (!(fl & FD_CLOEXEC))
    sys('fcntl', false, () => lib().fcntl(fd, F_SETFD, 'int', fl | FD_CLOEXEC));
}

export const isCloexec = (fd: number): boolean =>
  (sys('fcntl', false, () => lib().fcntl(fd, F_GETFD)) & FD_CLOEXEC) !== 0;

/** SO_TYPE of a socket (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET); throws ENOTSOCK otherwise. */
export function socketType(fd: number): number {
  const v = Buffer.alloc(4);
  const len = new Uint32Array([4]);
  sys('getsockopt', false, () => lib().getsockopt(fd, SOL_SOCKET, SO_TYPE, v, len));
  return v.readInt32LE(0);
}

/** One recvmsg() result. */
export interface RecvResult {
  /** Bytes read; 0 is end of stream on SOCK_STREAM (a datagram may also be empty). */
  n: number;
  /** Every fd from every SCM_RIGHTS cmsg; the caller owns (and must close) them. */
  fds: number[];
  /** MSG_CTRUNC: more fds were sent than fit; the kernel closed the ones that did not. */
  ctrunc: boolean;
  /** MSG_TRUNC: a datagram was longer than the buffer; its tail is lost. */
  trunc: boolean;
}

// x86_64/aarch64 layouts (LP64):
//   struct msghdr  { void *name @0; socklen_t namelen @8; struct iovec *iov @16;
//                    size_t iovlen @24; void *control @32; size_t controllen @40;
//                    int flags @48; }                          sizeof 56
//   struct iovec   { void *base @0; size_t len @8; }           sizeof 16
//   struct cmsghdr { size_t len @0; int level @8; int type @12; data @16 }
//   CMSG_ALIGN(x) = round up to 8; CMSG_SPACE(n) = 16 + CMSG_ALIGN(n)
const MSGHDR = 56;
const IOVEC = 16;
const CMSGHDR = 16;
const cmsgAlign = (n: number): number => (n + 7) & ~7;

/**
 * A malloc()ed block holding msghdr + iovec + control buffer + data buffer, reused
 * for every recvmsg/sendmsg on one socket. Native memory, because the kernel writes
 * through the pointers stored in msghdr and a JS Buffer's address is not ours to keep.
 */
export class MsgBuffer {
  readonly size: number;
  readonly maxFds: number;
  private ptr: bigint;
  private mem: Buffer;
  private readonly ctlSpace: number;
  private readonly dataOff: number;
  private readonly dataPtr: bigint;

  /** @param size data buffer bytes; @param maxFds fds accepted per message (0: none). */
  constructor(size: number, maxFds: number) {
    this.size = size;
    this.maxFds = maxFds;
    this.ctlSpace = maxFds > 0 ? CMSGHDR + cmsgAlign(4 * maxFds) : 0;
    this.dataOff = MSGHDR + IOVEC + this.ctlSpace;
    const total = this.dataOff + size;
    const p = lib().malloc(total);
    if (!p) throw new SysError('malloc', 12);
    this.ptr = p;
    this.dataPtr = p + BigInt(this.dataOff);
    this.mem = Buffer.from(lib().koffi.view(p, total));
  }

  private setup(dataLen: number, ctlLen: number): void {
    const m = this.mem;
    const p = this.ptr;
    m.fill(0, 0, MSGHDR);
    m.writeBigUInt64LE(p + BigInt(MSGHDR), 16);
    m.writeBigUInt64LE(1n, 24);
    if (ctlLen > 0) {
      m.writeBigUInt64LE(p + BigInt(MSGHDR + IOVEC), 32);
      m.writeBigUInt64LE(BigInt(ctlLen), 40);
    }
    m.writeBigUInt64LE(p + BigInt(this.dataOff), MSGHDR);
    m.writeBigUInt64LE(BigInt(dataLen), MSGHDR + 8);
  }

  /** One non-blocking recvmsg(MSG_CMSG_CLOEXEC); null when nothing is ready (EAGAIN). */
  recv(fd: number): RecvResult | null {
    this.setup(this.size, this.ctlSpace);
    const flags = MSG_DONTWAIT | MSG_CMSG_CLOEXEC;
    const n = sys('recvmsg', true, () => lib().recvmsg(fd, this.ptr, flags));
    if (n < 0) return null;
    const m = this.mem;
    const mflags = m.readInt32LE(48);
    const ctlLen = Number(m.readBigUInt64LE(40));
    const fds: number[] = [];
    // Walk every cmsg (CMSG_FIRSTHDR/CMSG_NXTHDR); only SOL_SOCKET/SCM_RIGHTS carries fds.
    let off = 0;
    while (off + CMSGHDR <= ctlLen) {
      const base = MSGHDR + IOVEC + off;
      const len = Number(m.readBigUInt64LE(base));
      if (len < CMSGHDR || off + len > ctlLen) break;
      if (m.readInt32LE(base + 8) === SOL_SOCKET && m.readInt32LE(base + 12) === SCM_RIGHTS) {
        for (let i = CMSGHDR; i + 4 <= len; i += 4) fds.push(m.readInt32LE(base + i));
      }
      off += cmsgAlign(len);
    }
    return { n, fds, ctrunc: (mflags & MSG_CTRUNC) !== 0, trunc: (mflags & MSG_TRUNC) !== 0 };
  }

  /**
   * One non-blocking recv() into the data buffer, for a stream socket that takes no fds
   * (fewer calls than recvmsg: no msghdr to fill or cmsgs to walk). Null on EAGAIN.
   */
  recvPlain(fd: number): RecvResult | null {
    recvFn ??= lib().recv;
    let n = Number(recvFn(fd, this.dataPtr, this.size, MSG_DONTWAIT));
    if (n < 0) {
      const again = () => (recvFn as Fn)(fd, this.dataPtr, this.size, MSG_DONTWAIT);
      n = afterFailure('recv', true, again);
    }
    return n < 0 ? null : { n, fds: [], ctrunc: false, trunc: false };
  }

  /** Copy of the first `n` received bytes. */
  data(n: number): Buffer {
    return Buffer.from(this.mem.subarray(this.dataOff, this.dataOff + n));
  }

  /**
   * One non-blocking sendmsg(MSG_NOSIGNAL) of `buf` (at most `size` bytes) with `fds`
   * as one SCM_RIGHTS cmsg. Returns bytes sent or -1 (EAGAIN). The fds stay open here;
   * the kernel references them until the peer receives or discards the message.
   */
  send(fd: number, buf: Uint8Array, fds: readonly number[]): number {
    if (buf.length > this.size) throw new RangeError('sendmsg data larger than MsgBuffer');
    if (fds.length > this.maxFds) throw new RangeError('too many fds for MsgBuffer');
    const ctlLen = fds.length > 0 ? CMSGHDR + cmsgAlign(4 * fds.length) : 0;
    this.setup(buf.length, ctlLen);
    const m = this.mem;
    if (ctlLen > 0) {
      const base = MSGHDR + IOVEC;
      m.fill(0, base, base + ctlLen);
      m.writeBigUInt64LE(BigInt(CMSGHDR + 4 * fds.length), base); // CMSG_LEN, not SPACE
      m.writeInt32LE(SOL_SOCKET, base + 8);
      m.writeInt32LE(SCM_RIGHTS, base + 12);
      fds.forEach((f, i) => m.writeInt32LE(f, base + CMSGHDR + 4 * i));
    }
    m.set(buf, this.dataOff);
    const flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    return sys('sendmsg', true, () => lib().sendmsg(fd, this.ptr, flags));
  }

  /** Releases the native block; the object must not be used afterwards. */
  free(): void {
    if (this.ptr === 0n) return;
    this.mem = Buffer.alloc(0);
    lib().free(this.ptr);
    this.ptr = 0n;
  }
}
