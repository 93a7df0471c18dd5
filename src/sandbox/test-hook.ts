/**
 * A test-only way to make the server call a denied syscall after the seccomp filter
 * is in place, so tests can observe what each `--seccomp action=` does.
 *
 * Inert unless the environment variable {@link TEST_HOOK_ENV} is set when the
 * server starts. With `TSWTPM_TEST_SECCOMP_HOOK=getpriority` (or `execve`), each
 * SIGUSR2 makes the process call getpriority(2) (resp. run `/bin/true`, which needs
 * clone and execve) and write one line to stderr with the outcome:
 * `tswtpm test hook: getpriority -> <result>`. With `action=kill` the process dies of
 * SIGSYS before the line is written.
 */
import { writeSync } from 'node:fs';
import { builtin } from '../node-builtins.js';

export const TEST_HOOK_ENV = 'TSWTPM_TEST_SECCOMP_HOOK';

// (modules required on use: every server start loads this one)
const CALLS: Readonly<Record<string, () => string>> = {
  getpriority: () => String(builtin('node:os').getPriority(0)),
  execve: () => {
    // required here: node:child_process costs every server start 1-2 ms
    const r = builtin('node:child_process').spawnSync('/bin/true');
    return r.error ? `error ${(r.error as NodeJS.ErrnoException).code}` : `status ${r.status}`;
  },
};

/** Installs the SIGUSR2 hook when the environment asks for it; returns whether it did. */
export function installTestHook(env: NodeJS.ProcessEnv = process.env): boolean {
  const name = env[TEST_HOOK_ENV];
  const call = name === undefined ? undefined : CALLS[name];
  if (name === undefined || call === undefined) return false;
  process.on('SIGUSR2', () => {
    let out: string;
    try {
      out = call();
    } catch (err) {
      out = `error ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
    writeSync(2, `tswtpm test hook: ${name} -> ${out}\n`);
  });
  return true;
}
