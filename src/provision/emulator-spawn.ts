/**
 * swtpm_setup's `--tpm <emulator words>`: probes and starts a separate emulator program
 * (C swtpm, `tswtpm socket`) the way swtpm_setup does (provisioning.md §1.7). The data
 * and control channels are Unix sockets given as `--server/--ctrl type=unixio,path=`
 * (Node has no socketpair for a child; the bytes on both channels are the same).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  unlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../client/control.js';
import { TpmClient } from '../client/tpm.js';
import {
  CTRL_TIMEOUT_MS,
  type Emulator,
  type EmulatorStart,
  type RunningEmulator,
  commandTimeoutMs,
} from './emulator.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * swtpm_setup executes argv[0] without a PATH search (a bare name is relative to the
 * working directory); Node would search PATH for a name without a slash.
 */
const execPath = (name: string): string => (name.includes('/') ? name : `./${name}`);

/** GLib's message for a program that could not be executed. */
function couldNotStart(name: string, err: Error): Error {
  const why =
    (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : err.message;
  return new Error(
    `Could not start swtpm '${name}': Failed to execute child process “${name}” (${why})`,
  );
}

/** Runs the emulator to completion with stdin closed, capturing stdout and stderr. */
function runProbe(argv: readonly string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(execPath(argv[0]!), argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(couldNotStart(argv[0]!, e)));
    child.on('close', (status, signal) =>
      resolve({
        status,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
  });
}

/** The raw wait status swtpm_setup prints (`exit with status 256`). */
const waitStatus = (r: Ran): number => (r.status !== null ? r.status << 8 : 0x7f);

export class SpawnedEmulator implements Emulator {
  readonly name: string;
  /** The emulator words: argv[0] is a path (no PATH search), then e.g. `socket`. */
  readonly words: readonly string[];
  /** fds the child must see at the same number (--keyfile-fd, --pwdfile-fd). */
  private readonly inheritFds: readonly number[];

  constructor(words: readonly string[], inheritFds: readonly number[] = []) {
    if (words.length === 0) throw new Error('empty emulator command');
    this.words = words;
    this.name = words[0]!;
    this.inheritFds = inheritFds;
  }

  private logArgs(logfile: string | undefined): string[] {
    return logfile === undefined ? [] : ['--log', `file=${logfile}`];
  }

  async capabilities(tpm2: boolean, logfile?: string): Promise<string> {
    const r = await runProbe([
      ...this.words,
      '--print-capabilities',
      ...(tpm2 ? ['--tpm2'] : []),
      ...this.logArgs(logfile),
    ]);
    if (r.status !== 0) throw new Error(`Failed to run swtpm '${this.name}': ${r.stderr}`);
    return r.stdout;
  }

  async printStates(uri: string, tpm2: boolean, logfile?: string): Promise<string> {
    const r = await runProbe([
      ...this.words,
      '--print-states',
      '--tpmstate',
      `backend-uri=${uri}`,
      ...(tpm2 ? ['--tpm2'] : []),
      ...this.logArgs(logfile),
    ]);
    if (r.status !== 0)
      throw new Error(`${this.name} exit with status ${waitStatus(r)}: ${r.stdout}`);
    return r.stdout;
  }

  async start(o: EmulatorStart): Promise<RunningEmulator> {
    // The pid file lives in /tmp, not $TMPDIR, created beforehand with mode 0600.
    const pidfile = `/tmp/.swtpm_setup.pidfile.${randomBytes(6).toString('base64url')}`;
    closeSync(openSync(pidfile, 'wx', 0o600));
    const sockDir = mkdtempSync(join(tmpdir(), 'tswtpm_setup.'));
    const data = join(sockDir, 'data.sock');
    const ctrl = join(sockDir, 'ctrl.sock');
    const args = [
      ...this.words.slice(1),
      '--flags',
      'not-need-init,startup-clear',
      '--tpmstate',
      `backend-uri=${o.uri}${o.lock ? ',lock' : ''}`,
      '--pid',
      `file=${pidfile}`,
      ...(o.tpm2 ? ['--tpm2'] : []),
      ...(o.key !== undefined ? ['--key', o.key] : []),
      ...this.logArgs(o.logfile),
      '--server',
      `type=unixio,path=${data}`,
      '--ctrl',
      `type=unixio,path=${ctrl}`,
    ];
    const out = o.logfile === undefined ? 'inherit' : 'ignore';
    const stdio: Array<'ignore' | 'inherit' | number> = ['ignore', out, out];
    for (const fd of this.inheritFds) {
      while (stdio.length < fd) stdio.push('ignore');
      stdio[fd] = fd;
    }
    const child = spawn(execPath(this.name), args, { stdio });
    const cleanup = () => {
      rmSync(sockDir, { recursive: true, force: true });
      try {
        unlinkSync(pidfile);
      } catch {}
    };
    try {
      await waitForPidfile(child, pidfile, [data, ctrl]);
    } catch (err) {
      child.kill('SIGKILL');
      cleanup();
      throw err;
    }
    try {
      unlinkSync(pidfile);
    } catch {}
    return runningChild(child, data, ctrl, cleanup);
  }
}

/** Polls every 5 ms, up to 1000 times, until the pid file is not empty (swtpm_setup). */
async function waitForPidfile(
  child: ChildProcess,
  pidfile: string,
  socks: string[],
): Promise<void> {
  let spawnError: Error | undefined;
  child.once('error', (e) => {
    spawnError = e;
  });
  for (let i = 0; i < 1000; i++) {
    if (spawnError !== undefined) {
      throw couldNotStart(child.spawnfile.replace(/^\.\//, ''), spawnError);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error('swtpm process terminated unexpectedly.');
    }
    let text = '';
    try {
      text = readFileSync(pidfile, 'utf8');
    } catch {}
    if (text.length > 0 && socks.every((s) => existsSync(s))) return;
    await sleep(5);
  }
  throw new Error('swtpm did not write its pid file in time.');
}

function runningChild(
  child: ChildProcess,
  data: string,
  ctrl: string,
  cleanup: () => void,
): RunningEmulator {
  const tpm = new TpmClient({ path: data });
  const control = new ControlClient({ path: ctrl }, { timeoutMs: CTRL_TIMEOUT_MS });
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
  const end = async (graceMs: number) => {
    await tpm.close().catch(() => {});
    await Promise.race([exited, sleep(graceMs)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    cleanup();
  };
  return {
    async transmit(cmd) {
      const timeoutMs = commandTimeoutMs(cmd);
      return tpm.transmit(cmd, { timeoutMs });
    },
    getInfo: (flags) => control.getInfoText(flags),
    async stop() {
      try {
        await control.shutdown();
      } finally {
        // swtpm_setup waits 500 x 1 ms for the process to go away, then SIGKILL.
        // swtpm_setup waits 500 ms; a loaded host may need longer to write the state.
        await end(2000);
      }
    },
    kill: () => end(0),
  };
}
