// Starts Debian's swtpm 0.7.1 (the oracle) or tswtpm with the same `socket` options,
// on fresh ports / socket paths, for the differential, tpm2-tools, cancel and fuzz tests.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (this file runs from dist/test/helpers). */
import { freePort, freePortPair, run } from './procs.js';
import { canConnect } from './spawn-tswtpm.js';

export { freePort, freePortPair };

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const TSWTPM_BIN = join(ROOT, 'bin/tswtpm.js');

export const haveSwtpm = spawnSync('swtpm', ['--version']).status === 0;

export type Impl = 'swtpm' | 'tswtpm';
export type Transport = 'tcp' | 'unix';

/** An endpoint: a TCP port on 127.0.0.1 or a Unix socket path. */
export type Endpoint = { readonly port: number } | { readonly path: string };

export interface ServerOptions {
  readonly tpm2?: boolean;
  /** Control channel transport; the data channel uses the same one unless `noServer`. */
  readonly transport: Transport;
  /** Omit `--server` (the data channel then comes through CMD_SET_DATAFD). */
  readonly noServer?: boolean;
  /** `--flags` value. */
  readonly flags?: string;
  /** Copy this state directory instead of starting empty. */
  readonly stateFrom?: string;
  /** Extra arguments. */
  readonly args?: readonly string[];
}

export interface Server {
  readonly impl: Impl;
  readonly proc: ChildProcess;
  readonly ctrl: Endpoint;
  readonly data: Endpoint | undefined;
  readonly stateDir: string;
  readonly pidFile: string;
  /** stdout + stderr so far. */
  output(): string;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  /** SIGTERM (if still running), wait for exit, remove the work directory. */
  stop(): Promise<void>;
}

let scratch: string | undefined;
/** A per-process scratch directory under the system tmpdir, removed at exit. */
export function scratchDir(): string {
  if (scratch === undefined) {
    scratch = mkdtempSync(join(tmpdir(), 'tswtpm-diff-'));
    const dir = scratch;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return scratch;
}

let seq = 0;
function workDir(impl: Impl): string {
  const d = join(scratchDir(), `${impl}-${process.pid}-${seq++}`);
  mkdirSync(d);
  return d;
}

/**
 * The control channel answers GET_CAPABILITY: the main loop runs (a bare connect only
 * shows that the socket listens; swtpm may still be starting up).
 */
function ready(ep: Endpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    let got = 0;
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(5000, () => done(false));
    s.once('error', () => done(false));
    s.once('close', () => done(got >= 8));
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= 8) done(true);
    });
    const caps = () => s.write(Buffer.from('00000001', 'hex'));
    if ('port' in ep) s.connect(ep.port, '127.0.0.1', caps);
    else s.connect(ep.path, caps);
  });
}

/** Command line shared by both implementations (after the program name). */
export function socketArgs(
  o: ServerOptions,
  dir: string,
  ctrl: Endpoint,
  data: Endpoint | undefined,
): string[] {
  const chan = (ep: Endpoint) =>
    'port' in ep ? `type=tcp,port=${ep.port}` : `type=unixio,path=${ep.path}`;
  const a = ['socket'];
  if (o.tpm2 !== false) a.push('--tpm2');
  a.push('--tpmstate', `dir=${join(dir, 'state')}`, '--ctrl', chan(ctrl));
  if (data !== undefined) a.push('--server', chan(data));
  a.push('--pid', `file=${join(dir, 'pid')}`);
  if (o.flags !== undefined) a.push('--flags', o.flags);
  a.push(...(o.args ?? []));
  return a;
}

/** Starts one implementation and waits until its control channel accepts connections. */
export async function startServer(impl: Impl, o: ServerOptions): Promise<Server> {
  const dir = workDir(impl);
  const stateDir = join(dir, 'state');
  if (o.stateFrom !== undefined) cpSync(o.stateFrom, stateDir, { recursive: true });
  else mkdirSync(stateDir);
  let ctrl: Endpoint;
  let data: Endpoint | undefined;
  if (o.transport === 'tcp') {
    const p = await freePortPair();
    data = o.noServer ? undefined : { port: p };
    ctrl = { port: p + 1 };
  } else {
    data = o.noServer ? undefined : { path: join(dir, 'sock') };
    ctrl = { path: join(dir, 'sock.ctrl') };
  }
  const args = socketArgs(o, dir, ctrl, data);
  const proc =
    impl === 'swtpm'
      ? spawn('swtpm', args, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [TSWTPM_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const until = Date.now() + 30000;
  for (;;) {
    if (await ready(ctrl)) break;
    if (proc.exitCode !== null || Date.now() > until) {
      proc.kill('SIGKILL');
      throw new Error(`${impl} did not start (exit ${proc.exitCode}): ${out}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // A Unix data socket is not probed: swtpm 0.7.1 treats the probe as a data client,
  // and once one has left it answers CMD_SET_DATAFD differently (compat.md).
  if (data !== undefined) {
    const listening = async (ep: Endpoint) => ('port' in ep ? canConnect(ep) : existsSync(ep.path));
    for (let i = 0; !(await listening(data)); i++) {
      if (i > 100) throw new Error(`${impl}: data channel not listening`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    impl,
    proc,
    ctrl,
    data,
    stateDir,
    pidFile: join(dir, 'pid'),
    output: () => out,
    exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TPM 2 state directory made by Debian's swtpm (INIT, Startup, then SHUTDOWN), so
 * two servers started from copies of it hold the same seeds and their permanent
 * blobs are byte-identical.
 */
export async function makeSharedState(tpm2 = true): Promise<string> {
  const dir = join(scratchDir(), `shared-${tpm2 ? 2 : 12}-${seq++}`);
  mkdirSync(dir);
  const s = await startServer('swtpm', {
    transport: 'tcp',
    tpm2,
    flags: 'not-need-init,startup-clear',
  });
  try {
    // Not spawnSync: this runs while other scripts of the same file are mid-exchange,
    // and a blocked event loop stretches their split writes past swtpm's 500 ms deadline.
    const r = await run('swtpm_ioctl', [
      '--tcp',
      `127.0.0.1:${(s.ctrl as { port: number }).port}`,
      '-s',
    ]);
    if (r.code !== 0) throw new Error(`swtpm_ioctl -s failed: ${r.stderr}`);
    await s.exited;
    cpSync(s.stateDir, dir, { recursive: true });
  } finally {
    await s.stop();
  }
  for (const f of ['.lock']) {
    if (existsSync(join(dir, f))) rmSync(join(dir, f));
  }
  return dir;
}
