/**
 * `--chroot` and `--seccomp` for `tswtpm socket|chardev|cuse`, in swtpm's order:
 * chroot right after option parsing (before --runas, the log file, the pid file,
 * sockets and state, which are then all inside DIR); the seccomp filter last, once
 * the TPM runs and just before the process reports ready.
 */
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Engine } from '../engine/engine.js';
import { chrootTo, initOpenssl, randStatus } from '../sandbox/chroot.js';
import { type SeccompAction, installSeccomp, loadLibseccomp } from '../sandbox/seccomp.js';
import { installTestHook } from '../sandbox/test-hook.js';
import { ignoreInspectorSignal, startThreadPool } from '../sandbox/threads.js';
import type { Config } from './args.js';
import { CliError, parseSubopts } from './subopts.js';

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

/** Whether libseccomp can be loaded here (`cmdarg-seccomp` in --print-capabilities). */
export function seccompSupported(): boolean {
  try {
    loadLibseccomp();
    return true;
  } catch {
    return false;
  }
}

/**
 * Loads everything the server will need from the file system, then chroot(DIR) and
 * chdir("/"). Called in the process that serves (not in a `-d`/CUSE launcher).
 */
export async function enterChroot(cfg: Config, dir: string): Promise<void> {
  await preload(cfg);
  try {
    chrootTo(dir);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  // swtpm 0.10+: OpenSSL must still be able to seed its DRBG inside the chroot.
  if (randStatus() !== 1) {
    throw new CliError('Error: no good entropy source in chroot environment');
  }
}

async function preload(cfg: Config): Promise<void> {
  // The server's own modules. ESM modules that are already loaded import again
  // without touching the file system; a first import after the chroot would fail.
  if (cfg.iface === 'cuse') {
    await import('./cuse.js');
    await import('./cuse-serve.js');
  } else {
    await import('./daemon.js');
    await import('./server.js');
    await import('../transport/unix-conn.js');
  }
  // koffi's addon, libtpms and its libcrypto (with OpenSSL's config), libc, libseccomp.
  Engine.get();
  initOpenssl();
  if (seccompAction(cfg.seccomp) !== 'none') loadLibseccomp();
  resolveKoffiEverywhere();
}

/**
 * Modules load koffi lazily with createRequire(import.meta.url). CommonJS caches a
 * resolution per (request, lookup paths), and the lookup paths come from the calling
 * module's directory; an uncached resolution inside the chroot fails. Resolving
 * koffi once from every directory of the compiled tree (and the bundle's) fills
 * that cache.
 */
function resolveKoffiEverywhere(): void {
  const root = new URL('../', import.meta.url);
  const visit = (dir: URL): void => {
    createRequire(new URL('x.js', dir)).resolve('koffi');
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) visit(new URL(`${e.name}/`, dir));
    }
  };
  visit(root);
}

/**
 * Installs the seccomp filter selected by `--seccomp` (kill by default) once every
 * thread exists, and the test hook when its environment variable is set.
 */
export async function applySeccomp(cfg: Config): Promise<void> {
  const action = seccompAction(cfg.seccomp);
  if (action !== 'none') {
    let lib: ReturnType<typeof loadLibseccomp>;
    try {
      lib = loadLibseccomp();
    } catch (err) {
      throw new CliError(
        `Error: seccomp is not available (${(err as Error).message}): install libseccomp2 or use --seccomp action=none`,
      );
    }
    await startThreadPool();
    ignoreInspectorSignal();
    try {
      installSeccomp(lib, action);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
  }
  installTestHook();
}
