/**
 * A character device as a CUSE TPM's client sees it (`/dev/vtpm0`): open(O_RDWR),
 * PTM_* ioctl()s, and read()/write() carrying TPM commands or state blobs. Every call
 * runs off the event loop (libuv's pool for fs, koffi's async calls for ioctl), since
 * each one is a FUSE round trip to a server that may live in this very process.
 *
 * Each read() and write() is exactly one system call: on a CUSE device one write()
 * is one TPM command, and read() returns at most the pending response.
 */
import { close, open, read, write } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import type { Koffi } from '../engine/koffi.js';
import { declareOnce, nativeLibc } from '../engine/native.js';

type IoctlFn = ((fd: number, req: number, arg: Buffer) => number) & {
  async: (fd: number, req: number, arg: Buffer, cb: (err: unknown, ret: number) => void) => void;
};

/** Bound once per process (engine/native.ts). */
function declareIoctl(koffi: Koffi): { koffi: Koffi; ioctl: IoctlFn } {
  // ioctl is variadic; a fixed (int, unsigned long, void *) prototype passes the same
  // registers on x86_64 and aarch64. A Buffer argument is passed as its own memory, so
  // the kernel's copy-out lands in it.
  const ioctl = nativeLibc().func('int ioctl(int, unsigned long, void *)') as IoctlFn;
  return { koffi, ioctl };
}

function lib() {
  return declareOnce(declareIoctl);
}

/** A failed call on a device; `code` is the errno name (`'EINVAL'`), `errno` its number. */
export class DeviceCallError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number) {
    const code = errno > 0 ? getSystemErrorName(-errno) : 'UNKNOWN';
    super(`${syscall}: ${code}`);
    this.name = 'DeviceCallError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** The errno of a node:fs error (its `errno` is negative, libuv style). */
function fsErrno(e: NodeJS.ErrnoException): number {
  return Math.abs(e.errno ?? 5);
}

/**
 * ioctl(fd, request, arg). Resolves 0, or the errno of a failed call (the caller
 * decides how to report it: swtpm_ioctl prints strerror(), the client throws).
 */
export function ioctl(fd: number, request: number, arg: Buffer): Promise<number> {
  const l = lib();
  return new Promise((resolve, reject) => {
    l.ioctl.async(fd, request, arg, (err, ret) => {
      // koffi restores the errno of the worker thread around this callback.
      if (err) reject(err);
      else resolve(ret < 0 ? l.koffi.errno() : 0);
    });
  });
}

/** open(path, O_RDWR). Rejects with the node:fs error (`code` ENOENT, EBUSY, EACCES…). */
export function openDevice(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    open(path, 'r+', (e, fd) => (e ? reject(e) : resolve(fd)));
  });
}

/** close(fd): asynchronous, since the kernel waits for the server's RELEASE reply. */
export function closeDevice(fd: number): Promise<void> {
  return new Promise((resolve) => {
    close(fd, () => resolve());
  });
}

/** One read() of at most `max` bytes (0 bytes: nothing pending). Rejects with DeviceCallError. */
export function readDevice(fd: number, max: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(max);
  return new Promise((resolve, reject) => {
    read(fd, buf, 0, max, null, (e, n) => {
      if (e) reject(new DeviceCallError('read', fsErrno(e)));
      else resolve(buf.subarray(0, n));
    });
  });
}

/** One write() of `data`; resolves the byte count it took. Rejects with DeviceCallError. */
export function writeDevice(fd: number, data: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => {
    write(fd, data, 0, data.length, null, (e, n) => {
      if (e) reject(new DeviceCallError('write', fsErrno(e)));
      else resolve(n);
    });
  });
}
