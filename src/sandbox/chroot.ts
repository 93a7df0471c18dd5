/**
 * `-R/--chroot DIR` for a Node.js process: libc chroot(2) through koffi, then
 * chdir("/"), as swtpm does. Threads share the root directory (CLONE_FS), so the
 * whole process is confined.
 *
 * Nothing outside DIR is reachable afterwards: libraries, Node modules and config
 * files must be loaded first (see cli/sandbox-setup.ts). {@link initOpenssl} does
 * that for the system OpenSSL that libtpms uses, which would otherwise read its
 * config file on first use, inside the chroot.
 */
import { createRequire } from 'node:module';
import type koffiModule from 'koffi';

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

const koffi = (): Koffi => createRequire(import.meta.url)('koffi') as Koffi;

/**
 * Initialises the system OpenSSL the way its first implicit use would (config file,
 * ciphers, digests, error strings) and seeds its DRBG. Call before the chroot.
 * Returns RAND_status(): 1 when the DRBG is seeded.
 */
export function initOpenssl(): number {
  // Loaded with RTLD_DEEPBIND like libtpms, so the calls bind to the system library
  // and not to the OpenSSL copy inside the node binary.
  const lib = koffi().load(LIBCRYPTO, { deep: true });
  const init = lib.func('int OPENSSL_init_crypto(uint64_t opts, const void *settings)');
  init(
    OPENSSL_INIT_LOAD_CONFIG |
      OPENSSL_INIT_ADD_ALL_CIPHERS |
      OPENSSL_INIT_ADD_ALL_DIGESTS |
      OPENSSL_INIT_LOAD_CRYPTO_STRINGS,
    null,
  );
  return randStatus();
}

/** OpenSSL's RAND_status(): swtpm 0.10+ requires 1 after the chroot. */
export function randStatus(): number {
  const lib = koffi().load(LIBCRYPTO, { deep: true });
  return lib.func('int RAND_status(void)')() as number;
}

/**
 * chroot(dir) then chdir("/"). Throws {@link ChrootError} with swtpm's message.
 *
 * @example
 * chrootTo('/var/lib/swtpm-chroot'); // needs CAP_SYS_CHROOT
 */
export function chrootTo(dir: string): void {
  const k = koffi();
  const libc = k.load('libc.so.6');
  const chroot = libc.func('int chroot(const char *path)');
  const strerror = libc.func('const char *strerror(int errnum)');
  if (chroot(dir) !== 0) throw new ChrootError(`chroot failed: ${strerror(k.errno())}`);
  try {
    process.chdir('/');
  } catch (err) {
    const errno = -((err as NodeJS.ErrnoException).errno ?? 0);
    throw new ChrootError(`chdir failed: ${strerror(errno)}`);
  }
}
