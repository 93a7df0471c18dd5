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
 */
import { nativeLibc } from './native.js';

/** dlfcn.h (glibc, every Linux architecture). */
const RTLD_NOW = 0x2;
const RTLD_DEEPBIND = 0x8;

/** What a `tswtpm socket|chardev` start loads, with koffi.load()'s flags for each. */
const SERVER_LIBRARIES: readonly { readonly name: string; readonly flags: number }[] = [
  { name: 'libtpms.so.0', flags: RTLD_NOW | RTLD_DEEPBIND }, // engine/libtpms.ts
  { name: 'libseccomp.so.2', flags: RTLD_NOW }, // sandbox/seccomp.ts
];

/**
 * Starts loading the server's libraries in the background and returns at once.
 * Does nothing where koffi cannot load or has no dlopen (the bindings then fail later
 * with their usual errors).
 */
export function prefetchServerLibraries(): void {
  try {
    const dlopen = nativeLibc().func('void *dlopen(const char *file, int mode)');
    for (const lib of SERVER_LIBRARIES) dlopen.async(lib.name, lib.flags, () => {});
  } catch {
    // (no koffi, or not glibc): the bindings load synchronously as before
  }
}
