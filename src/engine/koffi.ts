/**
 * koffi, for every module that binds native code (libtpms, libc, libseccomp).
 *
 * `require('koffi')` runs koffi's loader before its native module: the package's
 * `exports` map, a platform probe that reads the ELF header of the node binary, and a
 * second package (`@koromix/koffi-<platform>-<arch>`) with its own loader. At start-up
 * that costs about three times the CPU of loading the native module alone (median
 * 36 vs 11 ms of 21 fresh processes on a loaded machine; docs/performance.md,
 * "Start-up"). So the prebuilt native module is loaded directly from where koffi 3
 * keeps it for glibc Linux (`@koromix/koffi-linux-<arch>/linux_<arch>/koffi.node`);
 * its exports are koffi's API itself. Anywhere else (musl, another layout, another
 * major version) it is `require('koffi')`. Both give the same native instance: koffi's
 * own loader requires the same file, which Node loads once.
 *
 * @example
 * const koffi = requireKoffi();
 * const getpid = koffi.load('libc.so.6').func('int getpid(void)');
 */
import { createRequire } from 'node:module';
import type koffiModule from 'koffi';

export type Koffi = typeof koffiModule;

/** koffi's major version that this code is written for (package.json: ~3.3.4). */
const KOFFI_MAJOR = '3.';

export function requireKoffi(): Koffi {
  const require = createRequire(import.meta.url);
  if (process.platform === 'linux') {
    const arch = process.arch;
    try {
      const native = require(`@koromix/koffi-linux-${arch}/linux_${arch}/koffi.node`) as Koffi;
      if (typeof native.load === 'function' && String(native.version).startsWith(KOFFI_MAJOR)) {
        return native;
      }
    } catch {
      // not there, or not loadable here (a musl system): koffi's loader decides
    }
  }
  return require('koffi') as Koffi;
}
