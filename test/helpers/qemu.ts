// Helpers for the QEMU interop tests (test/interop/qemu-*.test.ts): start tswtpm or
// Debian's swtpm on a Unix control socket, run QEMU 7.2 (TCG) against it, talk to the
// QEMU monitor, and read a TPM's PCRs back afterwards as in clients.md recipe c2.
// Every process is spawned through `Procs`, which kills what is left by pid.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Child,
  type Procs,
  expectExit,
  freePort,
  kill9,
  since,
  waitFor,
} from '../fixtures/qemu/procs.js';
import { TpmConn } from '../fixtures/qemu/tpm-client.js';

export * from '../fixtures/qemu/procs.js';

/** bin/tswtpm.js of this checkout (this file runs from dist/test/helpers). */
export const TSWTPM_BIN = fileURLToPath(new URL('../../../bin/tswtpm.js', import.meta.url));
export const QEMU = 'qemu-system-x86_64';

const runs = (cmd: string, args: string[]) => {
  try {
    return spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 }).status === 0;
  } catch {
    return false;
  }
};

export const haveQemu = runs(QEMU, ['--version']);
export const haveSwtpm = runs('swtpm', ['--version']) && runs('swtpm_ioctl', ['--help']);

/** The Debian kernel of recipe c3 (TIS and CRB drivers built in), if installed. */
export const KERNEL: string | undefined = (() => {
  try {
    const k = readdirSync('/boot')
      .filter((f) => f.startsWith('vmlinuz-'))
      .sort()
      .pop();
    return k === undefined ? undefined : join('/boot', k);
  } catch {
    return undefined;
  }
})();

/** Why the QEMU tests cannot run here, or false. */
export function qemuSkip(opts: { swtpm?: boolean; kernel?: boolean } = {}): string | false {
  if (!haveQemu) return `${QEMU} not installed (scripts/install-deps.sh)`;
  if (opts.swtpm && !haveSwtpm) return 'swtpm / swtpm_ioctl not installed';
  if (opts.kernel && KERNEL === undefined) return 'linux-image-amd64 not installed';
  return false;
}

export type Impl = 'tswtpm' | 'swtpm';

function tpmCommand(impl: Impl): [string, string[]] {
  return impl === 'tswtpm' ? [process.execPath, [TSWTPM_BIN, 'socket']] : ['swtpm', ['socket']];
}

/**
 * `<impl> socket --tpm2 --tpmstate dir=<stateDir> --ctrl type=unixio,path=<ctrl>`: the
 * way libvirt starts swtpm for QEMU (no data socket: QEMU passes it with SET_DATAFD).
 */
export async function startUnixTpm(
  procs: Procs,
  impl: Impl,
  stateDir: string,
  ctrl: string,
  extra: readonly string[] = [],
): Promise<Child> {
  const [cmd, pre] = tpmCommand(impl);
  const c = procs.spawn(`${impl} (${ctrl})`, cmd, [
    ...pre,
    '--tpm2',
    '--tpmstate',
    `dir=${stateDir}`,
    '--ctrl',
    `type=unixio,path=${ctrl}`,
    '--pid',
    `file=${ctrl}.pid`,
    ...extra,
  ]);
  await waitReady(c, `${ctrl}.pid`);
  return c;
}

/**
 * swtpm and tswtpm write the pid file once their sockets listen (a socket file alone
 * exists from bind(), a moment before listen()).
 */
async function waitReady(c: Child, pidFile: string): Promise<void> {
  const mine = (): true | undefined => {
    try {
      return Number(readFileSync(pidFile, 'utf8').trim()) === c.pid ? true : undefined;
    } catch {
      return undefined;
    }
  };
  await waitFor(`${c.name} to be ready`, mine, 10_000, [c]);
}

/** Runs Debian's swtpm_ioctl; resolves with its exit status and combined output. */
export function swtpmIoctl(...args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile('swtpm_ioctl', args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ status, out: `${stdout}${stderr}` });
    });
  });
}

async function ioctlOk(...args: string[]): Promise<void> {
  const r = await swtpmIoctl(...args);
  if (r.status !== 0) throw new Error(`swtpm_ioctl ${args.join(' ')} -> ${r.status}: ${r.out}`);
}

/**
 * After QEMU was SIGKILLed (no CMD_SHUTDOWN): `swtpm_ioctl -v` stores the volatile
 * state, `-s` ends the TPM process, which must exit 0.
 */
export async function storeAndShutdown(tpm: Child, ctrl: string): Promise<void> {
  await ioctlOk('--unix', ctrl, '-v');
  await ioctlOk('--unix', ctrl, '-s');
  const code = await expectExit(tpm, 10_000);
  if (code !== 0) throw new Error(`${tpm.name} exited with ${code}:\n${tpm.output()}`);
}

/** sha256 etc. → 24 hex digests (upper case, as tpm2_pcrread prints them). */
export type PcrBanks = Record<string, string[]>;

const BANKS: ReadonlyArray<readonly [string, number]> = [
  ['sha1', 0x0004],
  ['sha256', 0x000b],
  ['sha384', 0x000c],
  ['sha512', 0x000d],
];

export interface ReadBack {
  readonly pcrs: PcrBanks;
  /**
   * Public area of an ECC P-256 primary key in the endorsement hierarchy: derived from
   * the endorsement primary seed, so equal only for the same permanent state.
   */
  readonly ek: string;
}

/**
 * Recipe c2's read-back: starts `impl` on `stateDir` with a TCP data and control port,
 * INIT (resumes from the stored volatile state), reads every PCR of every allocated
 * bank with raw TPM2_PCR_Read and creates the endorsement primary key, then
 * `swtpm_ioctl -s`.
 */
export async function readBack(procs: Procs, impl: Impl, stateDir: string): Promise<ReadBack> {
  const { tpm, data, ctrl } = await startTcpTpm(procs, impl, stateDir);
  try {
    await ioctlOk('--tcp', `127.0.0.1:${ctrl}`, '-i');
    const pcrs: PcrBanks = {};
    let ek: string;
    const conn = await TpmConn.connect(data);
    try {
      for (const [name, alg] of BANKS) {
        const digests = await conn.pcrReadAll(alg);
        if (digests !== undefined) pcrs[name] = digests;
      }
      ek = await conn.endorsementKey();
    } finally {
      conn.close();
    }
    await ioctlOk('--tcp', `127.0.0.1:${ctrl}`, '-s');
    await expectExit(tpm, 10_000);
    return { pcrs, ek };
  } finally {
    await kill9(tpm);
  }
}

/**
 * `impl` on `stateDir` with TCP data and control ports on loopback. The ports were free
 * a moment before; if another process took one meanwhile the server exits, and the
 * start is retried on new ports.
 */
async function startTcpTpm(procs: Procs, impl: Impl, stateDir: string) {
  const [cmd, pre] = tpmCommand(impl);
  const pidFile = `${stateDir}.readback.pid`;
  for (let attempt = 1; ; attempt++) {
    const data = await freePort();
    let ctrl = await freePort();
    while (ctrl === data) ctrl = await freePort();
    const tpm = procs.spawn(`${impl} (read-back)`, cmd, [
      ...pre,
      '--tpm2',
      '--tpmstate',
      `dir=${stateDir}`,
      '--server',
      `type=tcp,port=${data}`,
      '--ctrl',
      `type=tcp,port=${ctrl}`,
      '--pid',
      `file=${pidFile}`,
    ]);
    try {
      await waitReady(tpm, pidFile);
      return { tpm, data, ctrl };
    } catch (err) {
      await kill9(tpm);
      if (attempt === 3) throw err;
    }
  }
}

/** The PCRs of `readBack`. */
export async function readPcrs(procs: Procs, impl: Impl, stateDir: string): Promise<PcrBanks> {
  return (await readBack(procs, impl, stateDir)).pcrs;
}

/** Common QEMU arguments: q35, TCG, no disk, no defaults; SeaBIOS logs to `debugcon`. */
export function qemuArgs(opts: {
  ctrl: string;
  device: 'tpm-tis' | 'tpm-crb';
  debugcon: string;
  memMb?: number;
  extra?: readonly string[];
}): string[] {
  return [
    '-machine',
    'q35',
    '-accel',
    'tcg',
    '-m',
    String(opts.memMb ?? 128),
    '-nographic',
    '-nodefaults',
    '-no-user-config',
    '-debugcon',
    `file:${opts.debugcon}`,
    '-global',
    'isa-debugcon.iobase=0x402',
    '-chardev',
    `socket,id=chrtpm,path=${opts.ctrl}`,
    '-tpmdev',
    'emulator,id=tpm0,chardev=chrtpm',
    '-device',
    `${opts.device},tpmdev=tpm0`,
    ...(opts.extra ?? []),
  ];
}

const readText = (p: string) => (existsSync(p) ? readFileSync(p, 'latin1') : '');

/**
 * SeaBIOS has finished with the TPM once it enters INT 19h: tpm_prepboot (platform
 * hierarchy auth, "Calling INT 19h" into PCR 4, separators into PCRs 0-7) runs before
 * the boot, and each TPM command is synchronous. Its debug log (port 0x402) says
 * "enter handle_19" then.
 */
export function waitSeabiosDone(
  debugcon: string,
  qemu: Child,
  ms = 60_000,
  times = 1,
): Promise<true> {
  return waitFor(
    'SeaBIOS to reach INT 19h',
    () => (readText(debugcon).split('enter handle_19').length > times ? true : undefined),
    ms,
    [qemu],
  );
}

/** A QEMU human monitor on a Unix socket (`-monitor unix:PATH,server=on,wait=off`). */
export class Monitor {
  #sock: net.Socket;
  #buf = '';
  #waiter: (() => void) | undefined;
  #closed = false;

  private constructor(sock: net.Socket) {
    this.#sock = sock;
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.#buf += d;
      this.#waiter?.();
    });
    const end = () => {
      this.#closed = true;
      this.#waiter?.();
    };
    sock.on('close', end);
    sock.on('error', end);
  }

  static async connect(path: string, qemu: Child): Promise<Monitor> {
    // The socket file appears at bind(), a moment before listen(): retry refusals.
    const sock = await waitFor(
      `monitor ${path}`,
      () =>
        new Promise<net.Socket | undefined>((resolve) => {
          const s = net.connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', () => resolve(undefined));
        }),
      20_000,
      [qemu],
    );
    const m = new Monitor(sock);
    await m.#prompt();
    return m;
  }

  async #prompt(): Promise<string> {
    const end = Date.now() + 30_000;
    for (;;) {
      const i = this.#buf.indexOf('(qemu) ');
      if (i >= 0) {
        const text = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 7);
        return text;
      }
      if (this.#closed) throw new Error(`monitor closed: ${this.#buf}`);
      if (Date.now() > end) throw new Error(`no monitor prompt: ${this.#buf}`);
      await new Promise<void>((r) => {
        this.#waiter = r;
        setTimeout(r, 1000);
      });
      this.#waiter = undefined;
    }
  }

  /** Runs one HMP command and returns its output (without the echo and the prompt). */
  async cmd(line: string): Promise<string> {
    this.#sock.write(`${line}\n`);
    const text = await this.#prompt();
    // The monitor echoes the command line (with terminal escapes) before the output.
    return text
      .replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
      .replace(/\r/g, '')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.includes(line))
      .join('\n');
  }

  close(): void {
    this.#sock.destroy();
  }
}

/**
 * The pid holding a fcntl lock on `file`, from /proc/locks (undefined: not locked).
 * A classic POSIX lock (swtpm) names its pid there; an open-file-description lock
 * (tswtpm) shows pid -1, and its holder is the process with an fd whose fdinfo lists it.
 */
export function lockHolder(file: string): number | undefined {
  let st: { ino: number; dev: number };
  try {
    st = statSync(file);
  } catch {
    return undefined;
  }
  // Linux dev_t: major = bits 8-19, minor = bits 0-7 and 20-31.
  const major = (st.dev >>> 8) & 0xfff;
  const minor = (st.dev & 0xff) | ((st.dev >>> 12) & 0xfff00);
  for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
    // "1: POSIX  ADVISORY  WRITE 18226 fe:00:2147041 0 EOF" (blocked waiters have "->")
    const f = line.trim().split(/\s+/);
    if (f[1] !== 'POSIX' && f[1] !== 'OFDLCK') continue;
    const [ma, mi, ino] = (f[5] ?? '').split(':');
    if (Number(ino) !== st.ino || Number.parseInt(ma ?? '', 16) !== major) continue;
    if (Number.parseInt(mi ?? '', 16) !== minor) continue;
    const pid = Number(f[4]);
    return pid > 0 ? pid : ofdHolder(st.ino);
  }
  return undefined;
}

/** The process with an open file of inode `ino` whose fdinfo shows an OFD lock. */
function ofdHolder(ino: number): number | undefined {
  for (const pid of readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
        if (new RegExp(`^ino:\\s+${ino}$`, 'm').test(info) && /^lock:.*OFDLCK/m.test(info)) {
          return Number(pid);
        }
      } catch {
        // the fd or the process went away
      }
    }
  }
  return undefined;
}

export interface SeabiosRun {
  readonly pcrs: PcrBanks;
  /** ms from QEMU start until SeaBIOS reached INT 19h. */
  readonly bootMs: number;
  /** ms for the whole run: TPM start, boot, store, read-back. */
  readonly totalMs: number;
}

/**
 * Recipe c2: `impl` on a Unix control socket in `dir`, QEMU boots SeaBIOS with
 * `device` until it is done with the TPM, QEMU is SIGKILLed, the volatile state is
 * stored, and the PCRs are read back by `reader` (default: the same implementation)
 * from the same state directory. With `reset`, a monitor `system_reset` follows the
 * first boot (recipe c1 RESET=1: QEMU re-initialises the running TPM, SeaBIOS forces a
 * second reset, then measures again) and the read-back happens after the second boot.
 */
export async function seabiosPcrs(
  procs: Procs,
  impl: Impl,
  device: 'tpm-tis' | 'tpm-crb',
  dir: string,
  opts: { reader?: Impl; reset?: boolean } = {},
): Promise<SeabiosRun> {
  const t0 = Date.now();
  const state = join(dir, 'state');
  mkdirSync(state, { recursive: true });
  const ctrl = join(dir, 'ctrl.sock');
  const debugcon = join(dir, 'debugcon.txt');
  const mon = join(dir, 'mon.sock');
  const tpm = await startUnixTpm(procs, impl, state, ctrl);
  const q0 = Date.now();
  const extra = opts.reset ? ['-monitor', `unix:${mon},server=on,wait=off`] : [];
  const qemu = procs.spawn(
    `qemu (${impl}, ${device})`,
    QEMU,
    qemuArgs({ ctrl, device, debugcon, extra }),
  );
  let bootMs: number;
  try {
    await waitSeabiosDone(debugcon, qemu);
    bootMs = since(q0);
    if (opts.reset) {
      const m = await Monitor.connect(mon, qemu);
      await m.cmd('system_reset');
      m.close();
      await waitSeabiosDone(debugcon, qemu, 60_000, 2);
    }
  } finally {
    await kill9(qemu);
  }
  await storeAndShutdown(tpm, ctrl);
  const pcrs = await readPcrs(procs, opts.reader ?? impl, state);
  return { pcrs, bootMs, totalMs: since(t0) };
}

/** test/guest/build-initramfs-tpm.sh in the source tree. */
export const INITRAMFS_SCRIPT = fileURLToPath(
  new URL('../../../test/guest/build-initramfs-tpm.sh', import.meta.url),
);

/** Builds the recipe-c3 busybox initramfs into `out` (about 1 MB, 0.2 s). */
export function buildInitramfs(out: string): void {
  const r = spawnSync('bash', [INITRAMFS_SCRIPT, out], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${INITRAMFS_SCRIPT} failed: ${r.stdout}${r.stderr}`);
}

export interface LinuxRun {
  /** "key: value" lines the guest printed between the TPM check markers. */
  readonly report: Map<string, string>;
  /** The whole report as printed. */
  readonly text: string;
  /** ms from QEMU start until it powered off. */
  readonly bootMs: number;
}

/**
 * Recipe c3: the Debian kernel with the busybox initramfs under QEMU (TCG) with `impl`
 * behind `device`. The guest prints what it sees under /sys/class/tpm and powers off;
 * QEMU then sends CMD_SHUTDOWN and the TPM process must exit 0 by itself.
 */
export async function linuxGuest(
  procs: Procs,
  impl: Impl,
  device: 'tpm-tis' | 'tpm-crb',
  dir: string,
  initrd: string,
): Promise<LinuxRun> {
  if (KERNEL === undefined) throw new Error('no kernel in /boot');
  const state = join(dir, 'state');
  mkdirSync(state, { recursive: true });
  const ctrl = join(dir, 'ctrl.sock');
  const serial = join(dir, 'serial.txt');
  const tpm = await startUnixTpm(procs, impl, state, ctrl);
  const t0 = Date.now();
  const qemu = procs.spawn(
    `qemu linux (${impl}, ${device})`,
    QEMU,
    qemuArgs({
      ctrl,
      device,
      debugcon: join(dir, 'debugcon.txt'),
      memMb: 512,
      extra: [
        '-serial',
        `file:${serial}`,
        '-no-reboot',
        '-kernel',
        KERNEL,
        '-initrd',
        initrd,
        '-append',
        'console=ttyS0 quiet panic=-1',
      ],
    }),
  );
  const code = await expectExit(qemu, 150_000);
  const bootMs = since(t0);
  const out = readText(serial).replace(/\r/g, '');
  if (code !== 0) throw new Error(`QEMU exited with ${code}: ${qemu.output()}\n${out}`);
  const tpmCode = await expectExit(tpm, 10_000);
  if (tpmCode !== 0) throw new Error(`${tpm.name} exited with ${tpmCode}:\n${tpm.output()}`);
  const start = out.indexOf('=== TPM check start ===');
  const end = out.indexOf('=== TPM check end ===');
  if (start < 0 || end < start) throw new Error(`no TPM report on the console:\n${out}`);
  const text = out.slice(start, end + '=== TPM check end ==='.length);
  const report = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([\w/-]+): (.*)$/.exec(line);
    if (m !== null) report.set(m[1]!, m[2]!);
  }
  return { report, text, bootMs };
}
