import { type ChildProcess, spawn } from 'node:child_process';

/**
 * `-d/--daemon` (and CUSE, which always detaches): swtpm forks once it is ready; Node
 * cannot fork, so the command re-runs itself detached with `env` set to 1 and returns
 * when the child reports ready, relaying the child's stderr and exit code until then.
 */
export function daemonize(env: string): Promise<void> {
  const args = [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)];
  const child: ChildProcess = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
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
