/**
 * Private copies of libtpms, one per additional TPM in the process.
 *
 * libtpms keeps its TPM in global variables, and the dynamic linker maps a file
 * only once per process: glibc finds an already loaded object by name and by
 * device/inode. A second TPM therefore needs a second *file*. Each copy is written
 * into its own memfd (anonymous memory, nothing on disk) and loaded from
 * `/proc/self/fd/N`; the new inode gives it its own data and bss, hence its own TPM.
 * Unlike dlmopen(), this has no 16-namespace limit, and the copy's undefined symbols
 * (OpenSSL, libc) still bind to the one system libcrypto (RTLD_DEEPBIND, as for the
 * first copy): OpenSSL 3 is thread-safe, so copies can run on different threads.
 *
 * Once loaded, a copy runs the library file's own code and read-only pages, and its
 * memfd keeps only the pages of its writable segment (shared-text.ts). Cost per copy
 * (bench/instances.ts): those pages (28 KiB on Debian 12), the copy's relocated and
 * written data, its bss and heap.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { KoffiFunc } from 'koffi';
import { type Libtpms, bindLibtpms, loadLibtpms } from './libtpms.js';
import { declareOnce, nativeKoffi, nativeLibc } from './native.js';
import {
  type TextSegment,
  fileId,
  parseMaps,
  readOnlyPrefix,
  shareText,
  textSegments,
} from './shared-text.js';

/** memfd_create(2) flag: the fd is not inherited by child processes. */
const MFD_CLOEXEC = 1;

/** What a new copy needs: the library's bytes and memfd_create. Process-wide (native.ts). */
interface CopySource {
  readonly bytes: Buffer;
  readonly memfdCreate: KoffiFunc<(name: string, flags: number) => number>;
  /**
   * The library file the first copy was loaded from, kept open (a package upgrade that
   * replaces the path leaves this inode as it is), and its code segments: every copy's
   * code is mapped from it (shared-text.ts). Undefined when the file open is not the
   * one mapped, or `TSWTPM_SHARE_TEXT=0`: copies then keep their own code pages.
   */
  readonly text?: {
    readonly fd: number;
    readonly segments: readonly TextSegment[];
    readonly prefix: number;
  };
}

/**
 * The file the dynamic linker chose for `libtpms.so.0` and its identity, read from
 * /proc/self/maps after the first copy is loaded (so the copies are the same build as
 * the first).
 */
function loadedLibrary(): { path: string; dev: string; inode: number } {
  const m = parseMaps(readFileSync('/proc/self/maps', 'utf8')).find((x) =>
    /^\/.*\/libtpms\.so[^/]*$/.test(x.path ?? ''),
  );
  if (m?.path === undefined) {
    throw new Error('libtpms is not mapped in this process (no libtpms.so in /proc/self/maps)');
  }
  return { path: m.path, dev: m.dev, inode: m.inode };
}

function copySource(): CopySource {
  // The first copy is loaded normally and first: a later dlopen("libtpms.so.0") would
  // otherwise match a memfd copy by its SONAME and share that copy's TPM.
  loadLibtpms();
  const loaded = loadedLibrary();
  const fd = openSync(loaded.path, 'r');
  const bytes = readFileSync(fd);
  const memfdCreate = nativeLibc().func(
    'int memfd_create(const char *name, unsigned int flags)',
  ) as never;
  const opened = fileId(fd);
  const same = opened.dev === loaded.dev && opened.inode === loaded.inode;
  if (!same || process.env.TSWTPM_SHARE_TEXT === '0') {
    closeSync(fd);
    return { bytes, memfdCreate };
  }
  const text = { fd, segments: textSegments(bytes), prefix: readOnlyPrefix(bytes) };
  return { bytes, memfdCreate, text };
}

/**
 * Loads one more, private copy of libtpms. Its memfd stays open for the life of the
 * process: glibc also finds loaded objects by their path string, so a closed and
 * reused fd number would make a later `/proc/self/fd/N` resolve to the old copy.
 *
 * @example
 * const lib = loadLibtpmsCopy(); // independent of loadLibtpms() and of other copies
 */
export function loadLibtpmsCopy(): Libtpms {
  const src = declareOnce(copySource);
  const fd = src.memfdCreate('libtpms', MFD_CLOEXEC);
  if (fd < 0) throw new Error(`memfd_create failed: errno ${nativeKoffi().errno()}`);
  try {
    let off = 0;
    while (off < src.bytes.length) off += writeSync(fd, src.bytes, off);
    const lib = bindLibtpms(`/proc/self/fd/${fd}`);
    if (src.text !== undefined) {
      try {
        shareText(`/proc/self/fd/${fd}`, fd, src.text.fd, src.text.segments, src.text.prefix);
      } catch {
        // Sharing only saves memory and cache: a copy that kept (some of) its own pages
        // runs the same bytes. The copy is loaded: its memfd must stay open (see above).
      }
    }
    return lib;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
