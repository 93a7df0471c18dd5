/**
 * Spawns Debian's C swtpm (or, with `command`, any swtpm-compatible binary such as
 * tswtpm) on free TCP ports or Unix sockets in a temporary directory, and stops it.
 * Readiness: swtpm writes its pid file after both sockets listen; then GET_CAPABILITY.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ControlAddress, ControlClient } from '../../src/client/control.js';
import { TSWTPM_BIN, stopChild, waitReady } from '../../src/client/start.js';
import type { Address } from '../../src/client/wire.js';
import { freePort } from './procs.js';

export { freePort };

export interface SwtpmOptions {
  /** Default true. */
  readonly tpm2?: boolean;
  /** Control channel transport; default 'unix'. */
  readonly ctrl?: 'tcp' | 'unix';
  /** Data channel transport; default 'tcp'. */
  readonly server?: 'tcp' | 'unix' | 'none';
  /** `--flags` values, e.g. ['not-need-init', 'startup-clear']. */
  readonly flags?: readonly string[];
  /** Extra arguments after the generated ones. */
  readonly args?: readonly string[];
  /** Use this state directory instead of a fresh one. */
  readonly stateDir?: string;
  /** Program + leading args; default ['swtpm']. See TSWTPM for our own server. */
  readonly command?: readonly string[];
  readonly timeoutMs?: number;
}

export interface Swtpm {
  readonly ctrl: ControlAddress;
  readonly server: Address | undefined;
  readonly ctrlPort: number | undefined;
  readonly serverPort: number | undefined;
  readonly ctrlPath: string | undefined;
  readonly serverPath: string | undefined;
  /** `--tcp`/`--unix` arguments for swtpm_ioctl. */
  readonly ioctlArgs: readonly string[];
  readonly stateDir: string;
  readonly dir: string;
  readonly pid: number;
  readonly process: ChildProcess;
  /** The stderr the server has written so far. */
  stderr(): string;
  /** CMD_SHUTDOWN, else SIGTERM/SIGKILL; removes the temporary directory. Idempotent. */
  close(): Promise<void>;
}

/** Runs our own server through the helper: `startSwtpm({ command: TSWTPM })`. */
export const TSWTPM: readonly string[] = [process.execPath, TSWTPM_BIN];

/**
 * Starts the server. A TCP port is free only until the server binds it, and another
 * process may take it in between: a start that fails with "Address already in use" is
 * tried again on new ports.
 */
export async function startSwtpm(o: SwtpmOptions = {}): Promise<Swtpm> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(o);
    } catch (e) {
      const tcp = o.ctrl === 'tcp' || (o.server ?? 'tcp') === 'tcp';
      if (!tcp || attempt >= 5 || !/Address already in use/.test(String(e))) throw e;
    }
  }
}

async function startOnce(o: SwtpmOptions): Promise<Swtpm> {
  const dir = mkdtempSync(join(tmpdir(), 'swtpm-test-'));
  const stateDir = o.stateDir ?? join(dir, 'state');
  if (o.stateDir === undefined) mkdirSync(stateDir);
  const pidPath = join(dir, 'pid');
  const ctrlKind = o.ctrl ?? 'unix';
  const srvKind = o.server ?? 'tcp';
  const ctrlPort = ctrlKind === 'tcp' ? await freePort() : undefined;
  let serverPort = srvKind === 'tcp' ? await freePort() : undefined;
  while (serverPort !== undefined && serverPort === ctrlPort) serverPort = await freePort();
  const ctrlPath = ctrlKind === 'unix' ? join(dir, 'ctrl.sock') : undefined;
  const serverPath = srvKind === 'unix' ? join(dir, 'tpm.sock') : undefined;
  const args = ['socket', ...(o.tpm2 === false ? [] : ['--tpm2'])];
  args.push('--tpmstate', `dir=${stateDir}`, '--pid', `file=${pidPath}`);
  args.push('--ctrl', ctrlPath ? `type=unixio,path=${ctrlPath}` : `type=tcp,port=${ctrlPort}`);
  if (serverPath) args.push('--server', `type=unixio,path=${serverPath}`);
  if (serverPort !== undefined) args.push('--server', `type=tcp,port=${serverPort}`);
  if (o.flags && o.flags.length > 0) args.push('--flags', o.flags.join(','));
  args.push(...(o.args ?? []));
  const [exe, ...pre] = o.command ?? ['swtpm'];
  const child = spawn(exe!, [...pre, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const ctrl: ControlAddress = ctrlPath ? { path: ctrlPath } : { port: ctrlPort! };
  const control = new ControlClient(ctrl, { timeoutMs: 10000 });
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  let pid: number;
  try {
    const ms = o.timeoutMs ?? 15000;
    const probe = async () => void (await control.getCapability({ timeoutMs: ms }));
    pid = await waitReady(child, dir, pidPath, probe, ms, () => err);
  } catch (e) {
    child.kill('SIGKILL');
    cleanup();
    throw e;
  }
  let closing: Promise<void> | undefined;
  const server: Address | undefined = serverPath
    ? { path: serverPath }
    : serverPort !== undefined
      ? { port: serverPort }
      : undefined;
  return {
    ctrl,
    server,
    ctrlPort,
    serverPort,
    ctrlPath,
    serverPath,
    ioctlArgs: ctrlPath ? ['--unix', ctrlPath] : ['--tcp', `127.0.0.1:${ctrlPort}`],
    stateDir,
    dir,
    pid,
    process: child,
    stderr: () => err,
    close() {
      closing ??= stopChild(child, control).finally(cleanup);
      return closing;
    },
  };
}

// ---- swtpm_ioctl / tswtpm_ioctl runner ------------------------------------------------

/**
 * Runs Debian's swtpm_ioctl (as argv[0] `tswtpm_ioctl`, so usage and getopt messages
 * name the same program) or our bin/tswtpm_ioctl.js, and collects its output.
 */
export const TSWTPM_IOCTL_BIN = fileURLToPath(
  new URL('../../../bin/tswtpm_ioctl.js', import.meta.url),
);

export type Tool = 'c' | 'ts';

export interface ToolResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

export function runIoctl(
  tool: Tool,
  args: readonly string[],
  opts: { cwd?: string; input?: Uint8Array; env?: NodeJS.ProcessEnv } = {},
): Promise<ToolResult> {
  const child =
    tool === 'c'
      ? spawn('swtpm_ioctl', args, { argv0: 'tswtpm_ioctl', cwd: opts.cwd, env: opts.env })
      : spawn(process.execPath, [TSWTPM_IOCTL_BIN, ...args], { cwd: opts.cwd, env: opts.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString('latin1');
  });
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString('latin1');
  });
  child.stdin.on('error', () => {});
  child.stdin.end(opts.input ?? undefined);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ stdout, stderr, code }));
  });
}
