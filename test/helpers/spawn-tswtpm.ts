// Spawns `tswtpm` (or Debian's `swtpm`, for side-by-side checks) on free ports and
// temporary directories, waits until it listens, talks raw bytes to it, and stops it
// by pid. No mocks: every helper here drives a real process.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

/** bin/tswtpm.js in the source tree (this file runs from dist/test/helpers). */
import { freePort } from './procs.js';

export { freePort };

export const TSWTPM_BIN = fileURLToPath(new URL('../../../bin/tswtpm.js', import.meta.url));

export type Program = 'tswtpm' | 'swtpm';

export const haveSwtpm = spawnSync('swtpm', ['--version']).status === 0;
export const haveSwtpmIoctl = spawnSync('swtpm_ioctl', ['--help']).status === 0;

/** The argv[0] and leading arguments that run `program`. */
export function command(program: Program): { file: string; pre: string[] } {
  return program === 'swtpm'
    ? { file: 'swtpm', pre: [] }
    : { file: process.execPath, pre: [TSWTPM_BIN] };
}

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory under the system temp dir, removed when the test process exits. */
export function tempDir(prefix = 'tswtpm-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running child process with its output collected. */
export class Proc {
  /** Every process started by this test file that has not exited yet. */
  static readonly live = new Set<Proc>();
  readonly proc: ChildProcess;
  readonly exited: Promise<Exit>;
  #out = '';
  #err = '';

  constructor(program: Program, args: readonly string[], env?: NodeJS.ProcessEnv) {
    const { file, pre } = command(program);
    this.proc = spawn(file, [...pre, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: env === undefined ? process.env : { ...process.env, ...env },
    });
    this.proc.stdout?.on('data', (d: Buffer) => {
      this.#out += d.toString();
    });
    this.proc.stderr?.on('data', (d: Buffer) => {
      this.#err += d.toString();
    });
    Proc.live.add(this);
    this.proc.once('exit', () => Proc.live.delete(this));
    // A failed spawn emits 'error' and no 'exit'.
    this.proc.once('error', () => Proc.live.delete(this));
    // 'close' waits for stdout/stderr to drain, so the text is complete afterwards.
    this.exited = new Promise((r) =>
      this.proc.once('close', (code, signal) => r({ code, signal })),
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  stdout(): string {
    return this.#out;
  }

  stderr(): string {
    return this.#err;
  }

  /** Sends `signal` to this pid (if still running) and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<Exit> {
    if (this.running) process.kill(this.pid, signal);
    const t = setTimeout(() => {
      if (this.running) process.kill(this.pid, 'SIGKILL');
    }, timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(t);
    }
  }

  /** Waits for the exit without signalling; SIGKILL after `timeoutMs`. */
  async wait(timeoutMs = 5000): Promise<Exit & { timedOut: boolean }> {
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      if (this.running) process.kill(this.pid, 'SIGKILL');
    }, timeoutMs);
    const e = await this.exited;
    clearTimeout(t);
    return { ...e, timedOut };
  }
}

/**
 * SIGKILLs every process still running. Every test file that imports this module runs
 * it after its last test (registered below), so a server a test forgot to stop neither
 * keeps the file's process waiting on its pipes nor outlives it; `after(stopAll)` in a
 * file is harmless.
 */
export async function stopAll(): Promise<void> {
  await Promise.all([...Proc.live].map((p) => p.stop('SIGKILL')));
}

after(stopAll);
// And if the file's process ends some other way (an uncaught error, process.exit).
process.on('exit', () => {
  for (const p of Proc.live) if (p.running) p.proc.kill('SIGKILL');
});

export interface RunResult extends Exit {
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Runs `program args` to completion (killed after `timeoutMs`). */
export async function run(
  program: Program,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  const p = new Proc(program, args, opts.env);
  const e = await p.wait(opts.timeoutMs ?? 5000);
  return { ...e, stdout: p.stdout(), stderr: p.stderr() };
}

export type Addr = { readonly port: number } | { readonly path: string };

export const addrText = (a: Addr) => ('port' in a ? `127.0.0.1:${a.port}` : a.path);

export interface StartOptions {
  readonly program?: Program;
  readonly tpm2?: boolean;
  /** State directory; a fresh temp dir when absent. */
  readonly dir?: string;
  /** Data channel: tcp/unixio listening socket, or none (default tcp). */
  readonly data?: 'tcp' | 'unixio' | 'none';
  /** Extra `--server` sub-options, e.g. `disconnect`. */
  readonly serverOpts?: string;
  /** Control channel (default tcp). */
  readonly ctrl?: 'tcp' | 'unixio' | 'none';
  /** `--flags` value; omitted when undefined. */
  readonly flags?: string;
  readonly pidFile?: boolean;
  readonly extra?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** How long to keep trying to connect (ms). */
  readonly readyMs?: number;
}

/** A started emulator: the process plus where to reach it. */
export interface Started {
  readonly p: Proc;
  readonly dir: string;
  readonly data?: Addr;
  readonly ctrl?: Addr;
  readonly pidFile?: string;
  readonly args: readonly string[];
}

/**
 * Starts `tswtpm socket` (or `swtpm socket`) and waits until it accepts connections:
 * the control channel is probed when there is one, else the data channel (a probe
 * on the data channel of a `-t` instance would end it).
 */
export async function startTpm(o: StartOptions = {}): Promise<Started> {
  const program = o.program ?? 'tswtpm';
  const dir = o.dir ?? tempDir();
  const sockDir = tempDir('tswtpm-sock-');
  const args: string[] = ['socket'];
  if (o.tpm2 !== false) args.push('--tpm2');
  args.push('--tpmstate', `dir=${dir}`);
  let data: Addr | undefined;
  let ctrl: Addr | undefined;
  const more = o.serverOpts === undefined ? '' : `,${o.serverOpts}`;
  if ((o.data ?? 'tcp') === 'tcp') {
    data = { port: await freePort() };
    args.push('--server', `type=tcp,port=${data.port}${more}`);
  } else if (o.data === 'unixio') {
    data = { path: join(sockDir, 'data.sock') };
    args.push('--server', `type=unixio,path=${data.path}${more}`);
  }
  if ((o.ctrl ?? 'tcp') === 'tcp') {
    ctrl = { port: await freePort() };
    args.push('--ctrl', `type=tcp,port=${ctrl.port}`);
  } else if (o.ctrl === 'unixio') {
    ctrl = { path: join(sockDir, 'ctrl.sock') };
    args.push('--ctrl', `type=unixio,path=${ctrl.path}`);
  }
  if (o.flags !== undefined) args.push('--flags', o.flags);
  let pidFile: string | undefined;
  if (o.pidFile === true) {
    pidFile = join(sockDir, 'tpm.pid');
    args.push('--pid', `file=${pidFile}`);
  }
  args.push(...(o.extra ?? []));
  const p = new Proc(program, args, o.env);
  const probe = ctrl ?? data;
  if (probe !== undefined) {
    const deadline = Date.now() + (o.readyMs ?? 10000);
    for (;;) {
      if (await canConnect(probe)) break;
      if (!p.running || Date.now() > deadline) {
        await p.stop('SIGKILL');
        throw new Error(`${program} ${args.join(' ')} did not start: ${p.stderr()}`);
      }
      await sleep(10);
    }
  }
  const s: Started = { p, dir, args };
  return Object.assign(
    s,
    data && { data },
    ctrl && { ctrl },
    pidFile !== undefined ? { pidFile } : {},
  ) as Started;
}

/** Tries one connection; resolves true when it was accepted. */
export function canConnect(a: Addr): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    if ('port' in a) s.connect(a.port, '127.0.0.1');
    else s.connect(a.path);
  });
}

/**
 * A raw client connection: writes whole buffers (one write each) and reads exact byte
 * counts, TPM responses (by header size) or prefixed responses.
 */
export class RawConn {
  readonly sock: Socket;
  /** Resolves when the peer closed (or the socket failed). */
  readonly closed: Promise<void>;
  #buf: Buffer = Buffer.alloc(0);
  #ended = false;
  #wake: (() => void) | undefined;

  private constructor(sock: Socket) {
    this.sock = sock;
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake?.();
    });
    this.closed = new Promise((r) => {
      const end = () => {
        this.#ended = true;
        this.#wake?.();
        r();
      };
      sock.once('end', end);
      sock.once('close', end);
      sock.once('error', end);
    });
  }

  /**
   * Connects; a refused connection is retried for `retryMs` (Debian's swtpm may open
   * its data socket a moment after the control socket the start-up probe saw).
   */
  static async connect(a: Addr, retryMs = 2000): Promise<RawConn> {
    const deadline = Date.now() + retryMs;
    for (;;) {
      try {
        return await RawConn.connectOnce(a);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || Date.now() > deadline) throw e;
        await sleep(5);
      }
    }
  }

  private static connectOnce(a: Addr): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = new Socket();
      s.once('error', reject);
      const ok = () => {
        s.off('error', reject);
        resolve(new RawConn(s));
      };
      if ('port' in a) s.connect(a.port, '127.0.0.1', ok);
      else s.connect(a.path, ok);
    });
  }

  /** Bytes received and not yet consumed. */
  get pending(): number {
    return this.#buf.length;
  }

  get ended(): boolean {
    return this.#ended;
  }

  write(b: Uint8Array): void {
    this.sock.write(b);
  }

  /** Waits until `n` bytes are buffered and takes them; throws on close or timeout. */
  async read(n: number, timeoutMs = 10000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buf.length < n) {
      if (this.#ended) {
        throw new Error(`connection closed after ${this.#buf.length} of ${n} bytes`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout: ${this.#buf.length} of ${n} bytes`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.#wake = undefined;
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return Buffer.from(out);
  }

  /** One TPM response, framed by its header's size field. */
  async response(timeoutMs = 10000): Promise<Buffer> {
    const head = await this.read(6, timeoutMs);
    const rest = await this.read(head.readUInt32BE(2) - 6, timeoutMs);
    return Buffer.concat([head, rest]);
  }

  /**
   * One response to a TCG-prefixed command: u32 length, the TPM response, and the
   * 4-byte ack, returned whole.
   */
  async prefixedResponse(timeoutMs = 10000): Promise<Buffer> {
    const len = await this.read(4, timeoutMs);
    const rest = await this.read(len.readUInt32BE(0) + 4, timeoutMs);
    return Buffer.concat([len, rest]);
  }

  /** Sends one command and returns its response. */
  async transact(cmd: Uint8Array, timeoutMs = 10000): Promise<Buffer> {
    this.write(cmd);
    return this.response(timeoutMs);
  }

  /** Waits for the peer to close; false when it did not within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      t = setTimeout(() => r(false), ms);
    });
    try {
      return await Promise.race([this.closed.then(() => true), timeout]);
    } finally {
      clearTimeout(t);
    }
  }

  /** True when nothing arrives within `ms` (and the connection stays open). */
  async silentFor(ms: number): Promise<boolean> {
    await sleep(ms);
    return this.#buf.length === 0 && !this.#ended;
  }

  close(): void {
    this.sock.end();
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** Connects, sends one TPM command, returns the response, closes. */
export async function tpmOnce(a: Addr, cmd: Uint8Array, timeoutMs = 10000): Promise<Buffer> {
  const c = await RawConn.connect(a);
  try {
    return await c.transact(cmd, timeoutMs);
  } finally {
    c.destroy();
  }
}

/** Control-channel commands used by the tests (big-endian socket layout, §2). */
export const CTRL = {
  GET_CAPABILITY: 0x01,
  INIT: 0x02,
  SHUTDOWN: 0x03,
  STOP: 0x0e,
} as const;

/**
 * Sends one control request on a fresh connection and reads `respLen` bytes (or
 * fewer if the peer closes first).
 */
export async function ctrlOnce(a: Addr, req: Uint8Array, respLen: number): Promise<Buffer> {
  const c = await RawConn.connect(a);
  try {
    c.write(req);
    try {
      return await c.read(respLen);
    } catch {
      return c.read(c.pending, 0);
    }
  } finally {
    c.destroy();
  }
}

/** CMD_INIT with `flags`; returns the 4-byte result. */
export async function ctrlInit(a: Addr, flags = 0): Promise<number> {
  const req = Buffer.alloc(8);
  req.writeUInt32BE(CTRL.INIT, 0);
  req.writeUInt32BE(flags, 4);
  return (await ctrlOnce(a, req, 4)).readUInt32BE(0);
}

/** CMD_GET_CAPABILITY: result 0 and the capability bits (u64 on the socket). */
export async function ctrlGetCapability(a: Addr): Promise<bigint> {
  const req = Buffer.alloc(4);
  req.writeUInt32BE(CTRL.GET_CAPABILITY, 0);
  return (await ctrlOnce(a, req, 8)).readBigUInt64BE(0);
}

/** CMD_SHUTDOWN; returns the result. The process exits afterwards. */
export async function ctrlShutdown(a: Addr): Promise<number> {
  const req = Buffer.alloc(4);
  req.writeUInt32BE(CTRL.SHUTDOWN, 0);
  return (await ctrlOnce(a, req, 4)).readUInt32BE(0);
}
