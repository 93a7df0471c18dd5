/**
 * `-R/--chroot DIR` for a Node.js process: libc chroot(2) through koffi, then
 * chdir("/"), as swtpm does. Threads share the root directory (CLONE_FS), so the
 * whole process is confined.
 *
 * Nothing outside DIR is reachable afterwards: libraries, Node modules and config
 * files must be loaded first (see cli/server/sandbox-setup.ts). {@link loadChrootLibs} does
 * that for the system OpenSSL that libtpms uses, which would otherwise read its
 * config file on first use, inside the chroot.
 */
import type koffiModule from 'koffi';
import { requireKoffi } from '../engine/koffi.js';

type Koffi = typeof koffiModule;

/** `chroot failed: <strerror>` / `chdir failed: <strerror>` (swtpm's messages). */
export class ChrootError extends Error {
  readonly code = 'CHROOT_FAILED' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ChrootError';
  }
}

/** OPENSSL_init_crypto flags (crypto.h). */
const OPENSSL_INIT_LOAD_CRYPTO_STRINGS = 0x2;
const OPENSSL_INIT_ADD_ALL_CIPHERS = 0x4;
const OPENSSL_INIT_ADD_ALL_DIGESTS = 0x8;
const OPENSSL_INIT_LOAD_CONFIG = 0x40;

/** The libcrypto that libtpms links (Debian 12: OpenSSL 3). */
const LIBCRYPTO = 'libcrypto.so.3';

/** Native calls a chroot needs, bound while the libraries are still reachable. */
export interface ChrootLibs {
  /** chroot(dir) then chdir("/"). Throws {@link ChrootError} with swtpm's message. */
  chrootTo(dir: string): void;
  /** OpenSSL's RAND_status(): swtpm 0.10+ requires 1 after the chroot. */
  randStatus(): number;
}

/**
 * Binds libc's chroot and libcrypto, and initialises the system OpenSSL the way its
 * first implicit use would (config file, ciphers, digests, error strings), seeding
 * its DRBG. Call before the chroot; use the result after it.
 *
 * @example
 * const libs = loadChrootLibs();
 * libs.chrootTo('/var/lib/swtpm-chroot'); // needs CAP_SYS_CHROOT
 */
export function loadChrootLibs(): ChrootLibs {
  const koffi = requireKoffi();
  const libc = koffi.load('libc.so.6');
  const chroot = libc.func('int chroot(const char *path)');
  const strerror = libc.func('const char *strerror(int errnum)');
  // RTLD_DEEPBIND like libtpms, so the calls bind to the system library and not to
  // the OpenSSL copy inside the node binary.
  const crypto = koffi.load(LIBCRYPTO, { deep: true });
  const init = crypto.func('int OPENSSL_init_crypto(uint64_t opts, const void *settings)');
  const randStatus = crypto.func('int RAND_status(void)');
  init(
    OPENSSL_INIT_LOAD_CONFIG |
      OPENSSL_INIT_ADD_ALL_CIPHERS |
      OPENSSL_INIT_ADD_ALL_DIGESTS |
      OPENSSL_INIT_LOAD_CRYPTO_STRINGS,
    null,
  );
  randStatus();
  return {
    chrootTo(dir: string): void {
      if (chroot(dir) !== 0) throw new ChrootError(`chroot failed: ${strerror(koffi.errno())}`);
      try {
        process.chdir('/');
      } catch (err) {
        const errno = -((err as NodeJS.ErrnoException).errno ?? 0);
        throw new ChrootError(`chdir failed: ${strerror(errno)}`);
      }
    },
    randStatus: () => randStatus() as number,
  };
}
