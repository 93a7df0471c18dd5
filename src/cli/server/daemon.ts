import type { ChildProcess, StdioOptions } from 'node:child_process';
import { builtin } from '../../node-builtins.js';
import type { Config } from './args.js';

/**
 * `-d/--daemon` (and CUSE, which always detaches): swtpm forks once it is ready; Node
 * cannot fork, so the command re-runs itself detached with `env` set to 1 and returns
 * when the child reports ready, relaying the child's stderr and exit code until then.
 * The fds named by the options (`inheritedFds`) reach the child at the same numbers.
 */
export function daemonize(env: string, fds: readonly number[] = []): Promise<void> {
  const args = [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)];
  // required here: every server start imports notifyReady, few of them daemonize
  const spawn = builtin('node:child_process').spawn;
  const child: ChildProcess = spawn(process.execPath, args, {
    detached: true,
    stdio: childStdio(fds),
    env: { ...process.env, [env]: '1' },
  });
  child.stderr!.on('data', (b: Buffer) => process.stderr.write(b));
  return new Promise((resolve) => {
    const done = (code: number) => {
      child.removeAllListeners();
      child.stderr!.removeAllListeners('data');
      child.stderr!.destroy();
      if (child.connected) child.disconnect();
      child.unref();
      process.exitCode = code;
      resolve();
    };
    child.on('message', (m) => {
      if (m === 'ready') done(0);
    });
    child.on('close', (code, signal) => done(code ?? (signal ? 1 : 0)));
    child.on('error', (err) => {
      process.stderr.write(`tswtpm: ${err.message}\n`);
      done(1);
    });
  });
}

/** In the detached child: tells the launcher it may exit. A no-op in the foreground. */
export function notifyReady(): void {
  if (process.send === undefined) return;
  // The launcher is gone after this: a write to its stderr pipe must not kill us.
  process.stderr.on('error', () => {});
  process.send('ready');
  process.disconnect();
}

/**
 * stdin and stdout closed, stderr relayed, each fd in `fds` at its own number, and the
 * readiness channel above them all (it would otherwise take fd 3).
 */
export function childStdio(fds: readonly number[]): StdioOptions {
  const top = Math.max(2, ...fds);
  const stdio: StdioOptions = ['ignore', 'ignore', 'pipe'];
  for (let n = 3; n <= top; n++) stdio.push(fds.includes(n) ? n : 'ignore');
  stdio.push('ipc');
  return stdio;
}

/**
 * Every fd an option names: `--fd`, `--server fd=`, `--ctrl fd=|clientfd=`,
 * `--pid fd=`, `--log fd=`, `--key fd=|pwdfd=`, `--migration-key fd=|pwdfd=`,
 * `--pcap fd=`, `--profile fd=`.
 */
export function inheritedFds(cfg: Config): number[] {
  const out = new Set<number>();
  const add = (v: unknown) => {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 3) out.add(v);
  };
  add(cfg.server?.fd);
  add(cfg.ctrl?.fd);
  add(cfg.ctrl?.clientfd);
  add(cfg.pid?.fd);
  add(cfg.log?.fd);
  add(cfg.pcap?.fd);
  add(cfg.profile?.fd);
  for (const k of [cfg.key, cfg.migrationKey]) {
    add(k?.fd);
    add(k?.pwdfd);
  }
  return [...out].sort((a, b) => a - b);
}
