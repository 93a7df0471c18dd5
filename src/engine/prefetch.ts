/**
 * Start-up prefetch: dlopen() of the native libraries a server start will bind, run on
 * libuv's thread pool while the main thread goes on evaluating the CLI and parsing the
 * command line (docs/performance.md, "Start-up").
 *
 * Loading libtpms maps and relocates it and its libcrypto (BIND_NOW): 5-6 ms on a quiet
 * machine here, libseccomp 1 ms more. The binding modules later call `koffi.load()` on the same
 * names with the same flags; the dynamic linker then finds each object loaded (or waits
 * for the load in flight) and only counts one more reference. The flags must be the ones
 * koffi uses there, since an object's symbols are bound by its first load: libtpms with
 * RTLD_DEEPBIND (`{ deep: true }` in engine/libtpms.ts), so that its OpenSSL calls reach
 * the system libcrypto and not the copy linked into node. The handles are kept for the
 * life of the process, like every library a TPM binds. A failed load is ignored here: the
 * binding reports it, with its own message, when it loads the library for real.
 *
 * The pool's threads start with the first job, which the seccomp filter needs anyway
 * (sandbox/threads.ts).
 *
 * Once libtpms is loaded, {@link prefetchOpensslRandom} has the pool set up OpenSSL's
 * random generator, which TPMLIB_MainInit and the first TPM command would otherwise set
 * up on the main thread.
 */
import type { LibraryHandle } from 'koffi';
import { nativeLibc } from './native.js';

/** dlfcn.h (glibc, every Linux architecture). */
const RTLD_NOW = 0x2;
const RTLD_DEEPBIND = 0x8;

const LIBSECCOMP = 'libseccomp.so.2';
/** What a `tswtpm socket|chardev` start loads, with koffi.load()'s flags for each. */
const SERVER_LIBRARIES: readonly { readonly name: string; readonly flags: number }[] = [
  { name: 'libtpms.so.0', flags: RTLD_NOW | RTLD_DEEPBIND }, // engine/libtpms.ts
  { name: LIBSECCOMP, flags: RTLD_NOW }, // sandbox/seccomp.ts
];

/**
 * Starts loading the server's libraries in the background and returns at once;
 * libseccomp only when `libseccomp` is true (the build compiled no seccomp filter:
 * cli/server/seccomp-filters.ts).
 * Does nothing where koffi cannot load or has no dlopen (the bindings then fail later
 * with their usual errors).
 */
export function prefetchServerLibraries(libseccomp: boolean): void {
  try {
    const dlopen = nativeLibc().func('void *dlopen(const char *file, int mode)');
    for (const lib of SERVER_LIBRARIES) {
      if (libseccomp || lib.name !== LIBSECCOMP) dlopen.async(lib.name, lib.flags, () => {});
    }
    poolStarted = true;
  } catch {
    // (no koffi, or not glibc): the bindings load synchronously as before
  }
}

/**
 * Whether a prefetch queued work on libuv's thread pool: libuv then started all of the
 * pool's threads (sandbox/threads.ts need not start them again). Process-wide, as the
 * pool is.
 */
let poolStarted = false;

/** Whether {@link prefetchServerLibraries} has started the thread pool. */
export function prefetchStartedPool(): boolean {
  return poolStarted;
}

/** Settled once OpenSSL's random generator is set up (or the attempt failed). */
let opensslRandom: Promise<void> | undefined;

/**
 * Has the thread pool draw 16 random bytes from the OpenSSL that `libtpms` (a handle
 * of a loaded libtpms) uses, once per process: the first RAND_bytes() of a process
 * loads OpenSSL's configuration and default provider and seeds its generators, 2-3 ms
 * that libtpms pays on the main thread in TPMLIB_MainInit or the first command (its
 * entropy comes from RAND_bytes) unless this ran first. The main thread meanwhile binds
 * libtpms and opens the state and the channels; a libtpms call that needs the generator
 * before it is ready waits for it inside OpenSSL (its set-up runs once, under a lock).
 * All copies of libtpms in a process share one libcrypto, so one warm-up serves them all.
 */
export function prefetchOpensslRandom(libtpms: LibraryHandle): void {
  if (opensslRandom !== undefined) return;
  opensslRandom = new Promise<void>((resolve) => {
    try {
      // dlsym() through libtpms' handle finds the libcrypto it is linked with.
      const randBytes = libtpms.func('int RAND_bytes(void *buf, int num)');
      const buf = Buffer.alloc(16);
      randBytes.async(buf, buf.length, () => {
        buf.fill(0);
        resolve();
      });
    } catch {
      // (a libtpms without a dynamic libcrypto): libtpms sets it up when it needs it
      resolve();
    }
  });
}

/** Settles when {@link prefetchOpensslRandom}'s work is done (at once if never started). */
export function opensslRandomReady(): Promise<void> {
  return opensslRandom ?? Promise.resolve();
}
