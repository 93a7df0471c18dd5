/**
 * startTpm(): runs `tswtpm socket` as a child process on Unix sockets in a temporary
 * directory, for test suites that want a real TPM per test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  type FSWatcher,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  watch,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlClient } from './control.js';
import { TpmClient } from './tpm.js';

export interface StartTpmOptions {
  /** TPM 2 (default) or TPM 1.2. */
  readonly tpm2?: boolean;
  /** State directory (any path; passed as TPM_PATH); default: a fresh one in the temporary directory. */
  readonly stateDir?: string;
  /** `--flags` values, e.g. `['not-need-init', 'startup-clear']` (the default). */
  readonly flags?: readonly string[];
  /** More command-line arguments for `tswtpm socket`. */
  readonly args?: readonly string[];
  /** Program and leading arguments; default `[process.execPath, <package>/bin/tswtpm.js]`. */
  readonly command?: readonly string[];
  /** Give up waiting for readiness after this many ms. Default 15000. */
  readonly timeoutMs?: number;
  /** Where the child's stderr goes; default: kept and reported if start-up fails. */
  readonly stderr?: 'inherit' | 'pipe';
  readonly env?: NodeJS.ProcessEnv;
}

export interface RunningTpm {
  readonly control: ControlClient;
  readonly tpm: TpmClient;
  readonly pid: number;
  readonly stateDir: string;
  /** The temporary directory holding the sockets and pid file. */
  readonly dir: string;
  readonly ctrlPath: string;
  readonly serverPath: string;
  readonly process: ChildProcess;
  /** CMD_SHUTDOWN (SIGTERM, then SIGKILL as fallbacks) and removal of the temporary files. */
  close(): Promise<void>;
}

/** `<package>/bin/tswtpm.js`, next to dist/. */
export const TSWTPM_BIN = fileURLToPath(new URL('../../../bin/tswtpm.js', import.meta.url));

/**
 * Starts `tswtpm socket` with Unix control and data sockets in a mkdtemp directory and
 * resolves once its pid file exists and the control channel answers GET_CAPABILITY.
 *
 * @example
 * const t = await startTpm(); // TPM 2, already started (startup-clear)
 * const rsp = await t.tpm.transmit(pcrRead);
 * await t.control.getInfo(1);
 * await t.close();
 */
export async function startTpm(options: StartTpmOptions = {}): Promise<RunningTpm> {
  const dir = mkdtempSync(join(tmpdir(), 'tswtpm-'));
  const stateDir = options.stateDir ?? join(dir, 'state');
  const ctrlPath = join(dir, 'ctrl.sock');
  const serverPath = join(dir, 'tpm.sock');
  const pidPath = join(dir, 'pid');
  if (options.stateDir === undefined) mkdirSync(stateDir);
  const flags = options.flags ?? ['not-need-init', 'startup-clear'];
  // swtpm's option values are comma-separated with no escape: a ',' in a path would
  // start another option. The state directory goes through TPM_PATH (taken as it is);
  // the temporary directory's paths must be free of commas.
  if (dir.includes(',')) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`startTpm: the temporary directory ${dir} contains ',': set TMPDIR`);
  }
  const args = [
    'socket',
    ...(options.tpm2 === false ? [] : ['--tpm2']),
    '--ctrl',
    `type=unixio,path=${ctrlPath}`,
    '--server',
    `type=unixio,path=${serverPath}`,
    '--pid',
    `file=${pidPath}`,
    ...(flags.length > 0 ? ['--flags', flags.join(',')] : []),
    ...(options.args ?? []),
  ];
  const [exe, ...pre] = options.command ?? [process.execPath, TSWTPM_BIN];
  const child = spawn(exe!, [...pre, ...args], {
    stdio: ['ignore', 'ignore', options.stderr === 'inherit' ? 'inherit' : 'pipe'],
    env: { ...(options.env ?? process.env), TPM_PATH: stateDir },
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  const control = new ControlClient({ path: ctrlPath }, { timeoutMs: 10000 });
  try {
    const ms = options.timeoutMs ?? 15000;
    const probe = async () => void (await control.getCapability({ timeoutMs: ms }));
    const pid = await waitReady(child, dir, pidPath, probe, ms, () => stderr);
    const tpm = new TpmClient({ path: serverPath });
    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= stopChild(child, control, tpm).finally(cleanup);
      return closing;
    };
    return { control, tpm, pid, stateDir, dir, ctrlPath, serverPath, process: child, close };
  } catch (e) {
    child.kill('SIGKILL');
    cleanup();
    throw e;
  }
}

function readPid(path: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * swtpm writes the pid file after both sockets listen (observed with strace); the
 * directory watcher reports it without polling. GET_CAPABILITY then proves the
 * control channel serves.
 */
export function waitReady(
  child: ChildProcess,
  dir: string,
  pidPath: string,
  probe: () => Promise<void>,
  timeoutMs: number,
  stderr: () => string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const watcher: FSWatcher = watch(dir, () => check());
    let settled = false;
    let probing = false;
    const done = (err: Error | undefined, pid?: number) => {
      if (settled) return;
      settled = true;
      watcher.close();
      clearTimeout(timer);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(pid!);
    };
    const onExit = (code: number | null, sig: string | null) =>
      done(new Error(`tswtpm exited (${code ?? sig}) before it was ready: ${stderr().trim()}`));
    const timer = setTimeout(
      () => done(new Error(`tswtpm not ready after ${timeoutMs} ms: ${stderr().trim()}`)),
      timeoutMs,
    );
    const check = () => {
      if (settled || probing || !existsSync(pidPath)) return;
      const pid = readPid(pidPath);
      if (pid === undefined) return; // created, not yet written: the next event comes
      probing = true;
      probe().then(
        () => done(undefined, pid),
        (e: Error) => done(e),
      );
    };
    child.on('exit', onExit);
    check();
  });
}

/** CMD_SHUTDOWN, then SIGTERM, then SIGKILL, each given 3 s; resolves when the child is gone. */
export async function stopChild(
  child: ChildProcess,
  control: ControlClient | undefined,
  tpm?: TpmClient,
): Promise<void> {
  await tpm?.close().catch(() => {});
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const within = (ms: number) =>
    Promise.race([
      exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref()),
    ]);
  await control?.shutdown({ timeoutMs: 3000 }).catch(() => {});
  await control?.close();
  if (await within(3000)) return;
  child.kill('SIGTERM');
  if (await within(3000)) return;
  child.kill('SIGKILL');
  await exited;
}
