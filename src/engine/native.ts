/**
 * The process-wide side of native code, in one place. Everything else in tswtpm hangs
 * off an instance; this cannot, because a loaded library is process-wide: dlopen() of
 * one file maps it once per process (glibc finds it again by name and by inode), and
 * koffi itself is one native module whose named types may be declared only once.
 *
 * Kept here, each made on first use (nothing is loaded at import time: `import koffi`
 * alone costs 10–27 ms):
 * - koffi (koffi.ts says how it is loaded) and the one handle of libc;
 * - every set of koffi declarations, made once per process through {@link declareOnce}:
 *   libc functions (transport/libc.ts, transport/chardev.ts, storage/lock.ts,
 *   cli/common/sys.ts, provision/certs/libc.ts), the one epoll set that every
 *   watched fd is in (transport/poll.ts), libtpms' callback types
 *   (libtpms.ts), the binding of the
 *   normally loaded `libtpms.so.0` and what a memfd copy is made from (copies.ts), and
 *   which libtpms files are taken by a TPM and which are free for the next one
 *   (pool.ts): one file is one TPM, whoever loads it.
 *
 * @example
 * const libc = declareOnce(() => ({ getpid: nativeLibc().func('int getpid(void)') }));
 */
import type { LibraryHandle } from 'koffi';
import { type Koffi, requireKoffi } from './koffi.js';

/** Made once per process, keyed by the function that makes it. */
const made = new Map<object, unknown>();

function once<T>(key: object, make: () => T): T {
  if (made.has(key)) return made.get(key) as T;
  const value = make();
  made.set(key, value);
  return value;
}

/** koffi, required on first use. */
export function nativeKoffi(): Koffi {
  return once(requireKoffi, requireKoffi);
}

const LIBC = { name: 'libc.so.6' };

/** The C library, loaded through koffi on first use. */
export function nativeLibc(): LibraryHandle {
  return once(LIBC, () => nativeKoffi().load(LIBC.name));
}

/**
 * What `declare` returns, made on the first call and the same object ever after.
 * `declare` must be a module-level function: it is the key.
 */
export function declareOnce<T>(declare: (koffi: Koffi) => T): T {
  return once(declare, () => declare(nativeKoffi()));
}
