/**
 * libc through koffi: flock(2), so that tswtpm_localca and swtpm_localca exclude each other
 * on `<statedir>/.lock.swtpm-localca` (an exclusive BSD lock, as swtpm_localca takes it;
 * polled with LOCK_NB so the event loop never blocks), and strerror(3), so messages carry
 * glibc's texts as swtpm_localca's do.
 */
import { closeSync, openSync } from 'node:fs';
import { constants } from 'node:os';
import type { Koffi } from '../../engine/koffi.js';
import { declareOnce, nativeLibc } from '../../engine/native.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EWOULDBLOCK = 11;

type FlockFn = (fd: number, op: number) => number;

interface Libc {
  flock: FlockFn;
  errno: () => number;
  strerror: (errno: number) => string;
}

/** Declared once per process (engine/native.ts). */
function declareLibc(koffi: Koffi): Libc {
  const c = nativeLibc();
  const loc = c.func('int *__errno_location(void)') as unknown as () => unknown;
  return {
    flock: c.func('int flock(int, int)') as unknown as FlockFn,
    errno: () => koffi.decode(loc(), 'int') as number,
    strerror: c.func('const char *strerror(int)') as unknown as (errno: number) => string,
  };
}

const libc = (): Libc => declareOnce(declareLibc);

const ERRNO = constants.errno as Readonly<Record<string, number>>;

/** glibc's strerror() text of a Node fs error (by its `code`), else its message. */
export function errorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const n = code === undefined ? undefined : ERRNO[code];
  if (n !== undefined) return libc().strerror(n);
  return e instanceof Error ? e.message : String(e);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A held lock; `release()` unlocks and closes. */
export interface HeldLock {
  release(): void;
}

/**
 * Opens (creating with `mode` & ~umask) and exclusively locks `path`, waiting while another
 * process holds it.
 *
 * @example const l = await lockFile(dir + '/.lock.swtpm-localca', 0o775); try {…} finally { l.release(); }
 */
export async function lockFile(path: string, mode: number): Promise<HeldLock> {
  const fd = openSync(path, 'a', mode);
  const c = libc();
  try {
    for (;;) {
      if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) break;
      const e = c.errno();
      if (e !== EWOULDBLOCK)
        throw Object.assign(new Error(`flock failed (errno ${e})`), { errno: e });
      await sleep(10);
    }
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return {
    release() {
      c.flock(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}
