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
 * own loader requires the same file, which Node loads once. A server start skips the
 * module resolution as well ({@link loadKoffiBeside}); koffi is process-wide, so is
 * what that loaded.
 *
 * @example
 * const koffi = requireKoffi();
 * const getpid = koffi.load('libc.so.6').func('int getpid(void)');
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type koffiModule from 'koffi';
import { builtin } from '../node-builtins.js';

export type Koffi = typeof koffiModule;

/** koffi's major version that this code is written for (package.json: ~3.3.4). */
const KOFFI_MAJOR = '3.';

const isKoffi3 = (k: Koffi): boolean =>
  typeof k.load === 'function' && String(k.version).startsWith(KOFFI_MAJOR);

/** koffi's prebuilt module for glibc Linux, relative to a node_modules directory. */
const prebuilt = (arch: string) =>
  join('@koromix', `koffi-linux-${arch}`, `linux_${arch}`, 'koffi.node');

/** What {@link loadKoffiBeside} loaded; requireKoffi() returns it. */
let byPath: Koffi | undefined;

/**
 * For a `tswtpm` server only, a process that runs no code but ours: loads koffi's
 * prebuilt module straight from where npm installs it for the package at
 * `packageRoot` (hoisted beside it, or in its own node_modules) with process.dlopen(),
 * without Node's module resolution (about 1.3 ms of a start: the node_modules walk,
 * the package's exports map, realpath). Does nothing when the file is not there or is
 * not koffi 3; requireKoffi() then resolves it as before. Not for library use: a module
 * loaded this way is not in require()'s cache, so a user's own require of the same file
 * would load a second instance.
 */
export function loadKoffiBeside(packageRoot: string): void {
  if (byPath !== undefined || process.platform !== 'linux') return;
  const rel = prebuilt(process.arch);
  const parent = dirname(packageRoot);
  const own = join(packageRoot, 'node_modules', rel);
  const files = basename(parent) === 'node_modules' ? [join(parent, rel), own] : [own];
  const file = files.find((f) => existsSync(f));
  if (file === undefined) return;
  try {
    const m = { exports: {} as Koffi };
    process.dlopen(m, file);
    if (isKoffi3(m.exports)) byPath = m.exports;
  } catch {
    // (not loadable here, e.g. musl): requireKoffi() decides
  }
}

export function requireKoffi(): Koffi {
  if (byPath !== undefined) return byPath;
  // (node:module only here: a server start that found koffi by path never loads it)
  const require = builtin('node:module').createRequire(import.meta.url);
  if (process.platform === 'linux') {
    try {
      const native = require(prebuilt(process.arch)) as Koffi;
      if (isKoffi3(native)) {
        return native;
      }
    } catch {
      // not there, or not loadable here (a musl system): koffi's loader decides
    }
  }
  return require('koffi') as Koffi;
}
