import { constants, closeSync, openSync } from 'node:fs';
import { declareOnce, nativeKoffi, nativeLibc } from '../engine/native.js';
import { StorageError, describeFsError } from './errors.js';

/**
 * koffi through require(), as engine/libtpms.ts loads it, on first use. An ESM
 * `import koffi` would evaluate koffi's separate ESM wrapper as well: two copies of its
 * JS (platform detection included) in one process.
 */
const koffi = nativeKoffi;

// fcntl(2) and struct flock on Linux x86_64/aarch64 (glibc): short l_type, short
// l_whence, 4 bytes padding, int64 l_start, int64 l_len, int32 l_pid, 4 bytes padding.
const F_SETLK = 6;
/** Open-file-description lock (Linux 3.15+, same number on every architecture). */
const F_OFD_SETLK = 37;
const F_WRLCK = 1;
const F_UNLCK = 2;
const SEEK_SET = 0;
const SEEK_END = 2;
const FLOCK_SIZE = 32;

interface Libc {
  fcntl: (fd: number, cmd: number, type: string, arg: Buffer) => number;
  lseek: (fd: number, off: number, whence: number) => number | bigint;
}

/** Bound once per process (engine/native.ts). */
function declareLibc(): Libc {
  const lib = nativeLibc();
  return {
    fcntl: lib.func('int fcntl(int fd, int cmd, ...)'),
    lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)'),
  };
}

function getLibc(): Libc {
  return declareOnce(declareLibc);
}

/**
 * One non-blocking write lock (or unlock) of the whole file. Returns false when
 * another holder has a conflicting lock (EAGAIN/EACCES); other failures throw.
 *
 * It is an open-file-description lock (F_OFD_SETLK): it belongs to this fd's open file
 * and ends only when that is closed. A classic POSIX lock (F_SETLK, what swtpm takes)
 * belongs to the process and ends when the process closes *any* fd of the file, e.g.
 * one a client passed over the control channel. Both kinds conflict with each other,
 * so swtpm and tswtpm still exclude each other. Kernels without OFD locks (EINVAL)
 * get the classic lock.
 */
export function setWholeFileLock(fd: number, lock: boolean, path: string): boolean {
  const fl = Buffer.alloc(FLOCK_SIZE);
  fl.writeInt16LE(lock ? F_WRLCK : F_UNLCK, 0);
  fl.writeInt16LE(SEEK_SET, 2);
  // l_start = l_len = 0: the whole file, however it grows; l_pid must be 0 for OFD locks
  const { fcntl } = getLibc();
  const k = koffi();
  if (fcntl(fd, F_OFD_SETLK, 'void *', fl) === 0) return true;
  let errno = k.errno();
  if (errno === k.os.errno.EINVAL) {
    if (fcntl(fd, F_SETLK, 'void *', fl) === 0) return true;
    errno = k.errno();
  }
  if (errno === k.os.errno.EAGAIN || errno === k.os.errno.EACCES) return false;
  throw new StorageError('LOCK_FAILED', `fcntl(F_OFD_SETLK) on ${path} failed: errno ${errno}`, {
    path,
  });
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` milliseconds (swtpm's lock retry blocks the process too). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/**
 * Takes the write lock on `fd`, retrying every 10 ms up to `retries` more times.
 *
 * @example if (!lockFd(fd, 300, path)) throw new Error('state is in use')
 */
export function lockFd(fd: number, retries: number, path: string): boolean {
  for (let i = 0; ; i++) {
    if (setWholeFileLock(fd, true, path)) return true;
    if (i >= retries) return false;
    sleepSync(10);
  }
}

/** Size of a file or block device (lseek SEEK_END; fstat reports 0 for devices). */
export function deviceSize(fd: number): number {
  const r = Number(getLibc().lseek(fd, 0, SEEK_END));
  if (r < 0) throw new StorageError('READ_FAILED', `lseek failed: errno ${koffi().errno()}`);
  return r;
}

/**
 * swtpm's `<dir>/.lock`: created O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW mode 0660, then
 * a whole-file fcntl write lock (OFD, see setWholeFileLock). The fd stays open while
 * locked; unlock() closes it.
 *
 * @example const l = new LockFile('/var/lib/tpm/.lock'); if (!l.lock(0)) busy();
 */
export class LockFile {
  readonly path: string;
  #fd: number | undefined;

  constructor(path: string) {
    this.path = path;
  }

  get locked(): boolean {
    return this.#fd !== undefined;
  }

  /** Returns false when another process holds the lock after all retries. */
  lock(retries: number): boolean {
    if (this.#fd !== undefined) return true;
    let fd: number;
    try {
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;
      fd = openSync(this.path, flags | constants.O_NOFOLLOW, 0o660);
    } catch (e) {
      throw new StorageError(
        'LOCK_FAILED',
        `could not open lock file ${this.path}: ${describeFsError(e)}`,
        { path: this.path, cause: e },
      );
    }
    let ok = false;
    try {
      ok = lockFd(fd, retries, this.path);
    } finally {
      if (!ok) closeSync(fd);
    }
    if (ok) this.#fd = fd;
    return ok;
  }

  unlock(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
  }
}
