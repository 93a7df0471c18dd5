/**
 * `--chroot` and `--seccomp` for `tswtpm socket|chardev|cuse`, in swtpm's order:
 * chroot right after option parsing (before --runas, the log file, the pid file,
 * sockets and state, which are then all inside DIR); the seccomp filter last, once
 * the TPM runs and just before the process reports ready.
 */
import { closeSync, openSync } from 'node:fs';
import { loadLibtpms } from '../../engine/libtpms.js';
import { opensslRandomReady } from '../../engine/prefetch.js';
import { loadChrootLibs } from '../../sandbox/chroot.js';
import { installCompiledSeccomp } from '../../sandbox/seccomp-compiled.js';
import { type SeccompAction, installSeccomp, loadLibseccomp } from '../../sandbox/seccomp.js';
import { installTestHook } from '../../sandbox/test-hook.js';
import { ignoreInspectorSignal, startThreadPool } from '../../sandbox/threads.js';
import { deviceSize } from '../../storage/lock.js';
import { setNotDumpable } from '../common/hardening.js';
import { CliError, parseSubopts } from '../common/subopts.js';
import type { Config } from './args.js';
import { compiledSeccomp } from './seccomp-filters.js';

/**
 * `--seccomp action=none|kill|log`; absent or empty means kill (swtpm's default).
 * Messages are swtpm's; `log` is accepted although swtpm's help text hides it.
 */
export function seccompAction(raw: string | undefined): SeccompAction {
  if (raw === undefined) return 'kill';
  const o = parseSubopts('seccomp', raw, { action: 'string' });
  const action = o.action ?? 'kill';
  if (action !== 'none' && action !== 'kill' && action !== 'log') {
    throw new CliError(`Unsupported seccomp log action ${String(action)}`);
  }
  return action;
}

/**
 * Whether a filter can be built here (`cmdarg-seccomp` in --print-capabilities): the
 * build compiled one, or libseccomp can be loaded.
 */
export function seccompSupported(): boolean {
  if (compiledSeccomp() !== undefined) return true;
  try {
    loadLibseccomp();
    return true;
  } catch {
    return false;
  }
}

/** Installs the `--seccomp` filter (a no-op for action=none); see {@link prepareSandbox}. */
export type SeccompInstaller = () => Promise<void>;

/**
 * Checks `--seccomp` and binds libseccomp while it is reachable (before a chroot);
 * returns the installer that the server calls once every thread exists and the TPM
 * runs. Also installs the test hook when its environment variable is set.
 */
export function prepareSeccomp(cfg: Config): SeccompInstaller {
  return seccompInstaller(seccompAction(cfg.seccomp));
}

/** {@link prepareSeccomp} for an action already parsed (`tswtpm host`). */
export function seccompInstaller(action: SeccompAction): SeccompInstaller {
  if (action === 'none') return async () => void installTestHook();
  const install = filterInstaller(action);
  return async () => {
    // Before the filter, so that a test's SIGUSR2 never meets Node's default action.
    installTestHook();
    startThreadPool();
    ignoreInspectorSignal();
    try {
      install();
    } catch (err) {
      throw new CliError((err as Error).message);
    }
  };
}

/**
 * What loads the filter: the program compiled at build time, or else libseccomp, bound
 * now (before a chroot).
 */
function filterInstaller(action: Exclude<SeccompAction, 'none'>): () => void {
  const compiled = compiledSeccomp();
  if (compiled !== undefined) return () => installCompiledSeccomp(compiled, action);
  let lib: ReturnType<typeof loadLibseccomp>;
  try {
    lib = loadLibseccomp();
  } catch (err) {
    throw new CliError(
      `Error: seccomp is not available (${(err as Error).message}): install libseccomp2 or use --seccomp action=none`,
    );
  }
  return () => installSeccomp(lib, action);
}

/**
 * Loads everything the server will need from the file system, then chroot(DIR) and
 * chdir("/"). Called in the process that serves (not in a `-d`/CUSE launcher).
 */
export async function enterChroot(cfg: Config, dir: string): Promise<void> {
  await preloadServer(cfg);
  // OpenSSL reads its configuration while it sets up its generator (started on the pool
  // when libtpms was loaded): from the real root, not from DIR.
  await opensslRandomReady();
  const libs = loadChrootLibs();
  try {
    libs.chrootTo(dir);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  // swtpm 0.10+: OpenSSL must still be able to seed its DRBG inside the chroot.
  if (libs.randStatus() !== 1) {
    throw new CliError('Error: no good entropy source in chroot environment');
  }
}

/**
 * After a chroot, a module that is not loaded yet cannot be, and a CommonJS
 * `require()` of koffi's native module from a directory that has not resolved it before fails (Node
 * caches one resolution per requiring directory, only for the first load). So every
 * module and every lazily bound native library of the server is loaded here.
 */
async function preloadServer(cfg: Config): Promise<void> {
  // An ESM import() resolves (and stats) its file once per importing module; the
  // modules' own loaders are called here, so their later calls find them cached.
  if (cfg.iface === 'cuse') await (await import('./cuse.js')).loadCuseServer();
  else await (await import('./server.js')).loadUnixConn();
  // prctl through koffi from cli/: main() calls it again after the chroot
  setNotDumpable();
  // libtpms (and its libcrypto) through koffi: engine/libtpms.ts
  loadLibtpms();
  // libc for Unix sockets, fd passing and CUSE: transport/libc.ts
  (await import('../../transport/libc.js')).koffi();
  // fcntl/lseek for the state lock: storage/lock.ts binds them on first use
  const fd = openSync('/dev/null', 'r');
  try {
    deviceSize(fd);
  } finally {
    closeSync(fd);
  }
}
