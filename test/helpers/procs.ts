import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of bin/tswtpm.js in this checkout. */
export const TSWTPM_BIN = fileURLToPath(new URL('../../../bin/tswtpm.js', import.meta.url));
export const TSWTPM_IOCTL_BIN = fileURLToPath(
  new URL('../../../bin/tswtpm_ioctl.js', import.meta.url),
);

/**
 * Lowest port of the kernel's ephemeral range (outgoing connections take their source
 * ports from it, so a port picked there can be taken by any client before our server
 * binds it: EADDRINUSE under load).
 */
function ephemeralLow(): number {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    return Number.isInteger(low) && low > 11000 ? low : 32768;
  } catch {
    return 32768;
  }
}

/**
 * Ports this test process has handed out. A port is free between our check and the
 * server's bind, so two concurrent tests of one file (test files run one at a time) could
 * be given the same one, or one could get P+1 of another's pair: EADDRINUSE in
 * ctrl-diff-wire under load. A port is never handed out twice.
 */
const handedOut = new Set<number>();

/** A TCP port that was free a moment ago, chosen below the ephemeral range (bind, close). */
export async function freePort(): Promise<number> {
  const top = ephemeralLow() - 1;
  for (;;) {
    const port = 10000 + Math.floor(Math.random() * (top - 10000));
    if (handedOut.has(port)) continue;
    const s = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (!ok) continue;
    // Claimed before the close is awaited: a concurrent call may bind it meanwhile.
    const mine = !handedOut.has(port);
    handedOut.add(port);
    await new Promise<void>((r) => s.close(() => r()));
    if (mine) return port;
  }
}

/** Two consecutive free ports P, P+1 (tcti-swtpm wants ctrl at data + 1). */
export async function freePortPair(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p >= 65535 || handedOut.has(p + 1)) continue;
    handedOut.add(p + 1);
    const s = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(p + 1, '127.0.0.1', () => r(true));
    });
    if (ok) {
      await new Promise<void>((r) => s.close(() => r()));
      return p;
    }
  }
}

export function tempDir(prefix = 'tswtpm-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Resolves once a TCP connection to the port succeeds (retrying every 5 ms). */
export async function waitForPort(port: number, proc?: ChildProcess, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (proc !== undefined && proc.exitCode !== null) {
      throw new Error(`process exited with ${proc.exitCode} before listening on ${port}`);
    }
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface Server {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly ctrlPort: number;
  stderr(): string;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `swtpm` (Debian's, `which = 'swtpm'`) or ours (`'tswtpm'`) with a TCP data
 * port P and control port P+1 (tcti-swtpm's convention), plus `args`.
 */
export async function startTcp(which: 'swtpm' | 'tswtpm', args: string[]): Promise<Server> {
  const port = await freePortPair();
  const ctrlPort = port + 1;
  const argv = [
    'socket',
    ...args,
    '--server',
    `type=tcp,port=${port}`,
    '--ctrl',
    `type=tcp,port=${ctrlPort}`,
  ];
  const proc =
    which === 'swtpm'
      ? spawn('swtpm', argv, { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(process.execPath, [TSWTPM_BIN, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  try {
    await waitForPort(ctrlPort, proc);
    await waitForPort(port, proc);
  } catch (e) {
    await new Promise((r) => setTimeout(r, 50));
    throw new Error(`${(e as Error).message}; stderr: ${err}`);
  }
  return {
    proc,
    port,
    ctrlPort,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** Runs a program; resolves with its exit code and output (never rejects on exit code). */
export function run(
  file: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 30000, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) p.stdin?.end(opts.input);
  });
}

/** tpm2-tools against a server through tcti-swtpm. */
export function tpm2(tool: string, port: number, args: string[]) {
  return run(`tpm2_${tool}`, ['-T', `swtpm:host=127.0.0.1,port=${port}`, ...args]);
}

/** PCR `index` (sha256) as lower-case hex, read with tpm2_pcrread. */
export async function pcrRead(port: number, index: number): Promise<string> {
  const r = await tpm2('pcrread', port, [`sha256:${index}`]);
  if (r.code !== 0) throw new Error(`tpm2_pcrread failed: ${r.stderr}`);
  const m = /0x([0-9A-F]{64})/i.exec(r.stdout);
  if (m === null) throw new Error(`no PCR value in: ${r.stdout}`);
  return m[1]!.toLowerCase();
}

/**
 * Resolves once the control socket at `path` answers GET_CAPABILITY (swtpm binds the
 * path a moment before it listens, so its existence is not enough); rejects when
 * `proc` exits first or after `ms`.
 */
export async function waitForControl(path: string, proc?: ChildProcess, ms = 10000): Promise<void> {
  const { ControlClient } = await import('../../src/client/control.js');
  const end = Date.now() + ms;
  for (;;) {
    if (proc !== undefined && (proc.exitCode !== null || proc.signalCode !== null)) {
      throw new Error(
        `process exited (${proc.exitCode ?? proc.signalCode}) before ${path} answered`,
      );
    }
    try {
      await new ControlClient({ path }, { timeoutMs: 2000 }).getCapability();
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
