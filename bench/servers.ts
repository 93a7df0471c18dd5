/**
 * Starts tswtpm and Debian's swtpm with the same command line, on free TCP ports or
 * Unix sockets, and stops them. Readiness is the first answered GetRandom.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getRandom2, parseResponse } from '../src/protocol/tpm/commands.js';
import { type Addr, type RawConn, connectRetry } from './raw.js';

/** The two servers compared, and Node's floor (bench/echo-server.ts, no TPM work). */
export type Program = 'tswtpm' | 'swtpm' | 'echo';

/** bin/tswtpm.js (this file runs from dist/bench). */
export const TSWTPM_BIN = fileURLToPath(new URL('../../bin/tswtpm.js', import.meta.url));
const ECHO_BIN = fileURLToPath(new URL('./echo-server.js', import.meta.url));

/** Whether Debian's swtpm is installed, and its version line. */
export function swtpmVersion(): string | undefined {
  const r = spawnSync('swtpm', ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return /version ([\d.]+)/.exec(r.stdout)?.[1] ?? r.stdout.trim();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A temporary directory removed when the process exits. */
export function tempDir(prefix = 'tswtpm-bench-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

/** A copy of `stateDir` in a new temporary directory. */
export function copyState(stateDir: string): string {
  const d = tempDir('tswtpm-bench-state-');
  cpSync(stateDir, d, { recursive: true });
  return d;
}

export interface ServerOptions {
  readonly program: Program;
  readonly stateDir: string;
  readonly transport: 'tcp' | 'unix';
  /** `--flags` (default not-need-init,startup-clear). */
  readonly flags?: string;
  /** Node options before bin/tswtpm.js (tswtpm only), e.g. `--import` of a preload. */
  readonly nodeArgs?: readonly string[];
}

export interface Server {
  readonly program: Program;
  readonly pid: number;
  readonly data: Addr;
  readonly ctrl: Addr;
  readonly proc: ChildProcess;
  /** ms from spawn() to the first answered GetRandom (1 ms connect polling). */
  readonly startMs: number;
  /** When spawn() was called: ms since the Unix epoch, fractional. */
  readonly spawnedAt: number;
  /** A persistent data connection (the readiness probe's); cases may close and replace it. */
  conn: RawConn;
  stderr(): string;
  stop(): Promise<void>;
}

/** argv of `program socket --tpm2 ...` as swtpm takes it. */
export function serverArgv(o: ServerOptions, data: Addr, ctrl: Addr): [string, string[]] {
  const chan = (a: Addr) =>
    'path' in a ? `type=unixio,path=${a.path}` : `type=tcp,port=${a.port}`;
  const args = [
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${o.stateDir}`,
    '--server',
    chan(data),
    '--ctrl',
    chan(ctrl),
    '--flags',
    o.flags ?? 'not-need-init,startup-clear',
  ];
  if (o.program === 'echo') {
    return [process.execPath, [ECHO_BIN, '--server', chan(data), '--ctrl', chan(ctrl)]];
  }
  return o.program === 'swtpm'
    ? ['swtpm', args]
    : [process.execPath, [...(o.nodeArgs ?? []), TSWTPM_BIN, ...args]];
}

/** Free addresses for one server's data and control channels. */
export async function addresses(transport: 'tcp' | 'unix'): Promise<{ data: Addr; ctrl: Addr }> {
  if (transport === 'unix') {
    const d = tempDir('tswtpm-bench-sock-');
    return { data: { path: join(d, 'data.sock') }, ctrl: { path: join(d, 'ctrl.sock') } };
  }
  const data = await freePort();
  let ctrl = await freePort();
  while (ctrl === data) ctrl = await freePort();
  return { data: { port: data }, ctrl: { port: ctrl } };
}

/** Spawns a server and waits for the first GetRandom answer (connect polled every 1 ms). */
export async function startServer(o: ServerOptions): Promise<Server> {
  const { data, ctrl } = await addresses(o.transport);
  const [file, argv] = serverArgv(o, data, ctrl);
  const t0 = performance.now();
  const spawnedAt = performance.timeOrigin + t0;
  const proc = spawn(file, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let conn: RawConn;
  try {
    conn = await Promise.race([
      firstResponse(data),
      exited.then(() => {
        throw new Error(`${o.program} exited during start-up: ${err.trim()}`);
      }),
    ]);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  const startMs = performance.now() - t0;
  const server: Server = {
    program: o.program,
    pid: proc.pid!,
    data,
    ctrl,
    proc,
    startMs,
    spawnedAt,
    conn,
    stderr: () => err,
    async stop() {
      server.conn.close();
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.kill('SIGTERM');
      await exited;
      clearTimeout(t);
    },
  };
  return server;
}

async function firstResponse(data: Addr): Promise<RawConn> {
  const probe = getRandom2(16);
  for (;;) {
    const c = await connectRetry(data, 20000, 1);
    try {
      const rsp = await c.request(probe);
      const { rc } = parseResponse(rsp);
      if (rc !== 0) throw new Error(`GetRandom rc 0x${rc.toString(16)}`);
      return c;
    } catch (e) {
      c.close();
      if (!/closed/.test((e as Error).message)) throw e;
    }
  }
}

/** VmRSS of `pid` in KiB (Linux /proc). */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}
