/**
 * `tswtpm host --dir BASE`: many vTPMs served by one process (issue 12), each on its
 * own copy of libtpms. Every vTPM NAME lives in BASE/NAME: its state in `state/`, its
 * control channel `ctrl.sock` (UnixIO: CMD_SET_DATAFD works), unless it was added for
 * QEMU its data channel `tpm.sock`, and its log `tswtpm.log` (swtpm's `--log` format;
 * level from `--vtpm-log` or the `add` request); `options.json` remembers how it was
 * added, so a restarted host serves the same vTPMs again.
 *
 * The management socket BASE/host.sock takes one request per line and answers one line:
 *   add NAME [tpm1.2] [qemu] [log-level=N]
 *                             → `ok` or `error vTPM 'NAME': <message>` (starts the vTPM;
 *                               a new one is manufactured, an existing state is loaded)
 *   remove NAME               → `ok`: TPM2_Shutdown, sockets closed; the state is kept
 *   list                      → `ok NAME NAME ...`
 * SIGTERM, SIGINT and SIGHUP stop every vTPM and end the process.
 *
 * Hardening as `tswtpm socket`: no inspector, not dumpable, and the seccomp profile
 * (`--seccomp`, default kill) installed before any vTPM or the management socket serves.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { refuseInspector, setNotDumpable } from '../common/hardening.js';
import { CliError } from '../common/subopts.js';
import { parseArgs } from './args.js';
import { type HostConfig, parseHostArgs } from './host-args.js';
import { Logger } from './log.js';
import { runServer } from './server.js';

interface VtpmOptions {
  readonly tpm2: boolean;
  /** Only a control socket: QEMU passes the data channel with CMD_SET_DATAFD. */
  readonly qemu: boolean;
  /** Level of BASE/NAME/tswtpm.log; absent: the host's `--vtpm-log`. */
  readonly logLevel?: number;
}

interface Vtpm {
  readonly stop: () => Promise<void>;
  readonly done: Promise<void>;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
const USAGE = 'usage: add NAME [tpm1.2] [qemu] [log-level=N] | remove NAME | list';

/** The `tswtpm socket` command line of one vTPM. */
function vtpmArgv(dir: string, o: VtpmOptions, logLevel: number): string[] {
  return [
    ...(o.tpm2 ? ['--tpm2'] : []),
    '--tpmstate',
    `dir=${join(dir, 'state')}`,
    ...(o.qemu ? [] : ['--server', `type=unixio,path=${join(dir, 'tpm.sock')},mode=0600`]),
    '--ctrl',
    `type=unixio,path=${join(dir, 'ctrl.sock')},mode=0600`,
    '--flags',
    o.qemu ? 'startup-clear' : 'not-need-init,startup-clear',
    '--log',
    logLevel > 0 ? `file=${join(dir, 'tswtpm.log')},level=${logLevel}` : 'file=-',
  ];
}

/**
 * One vTPM's log: its own file (or none), and every error also in the host's log,
 * prefixed with the vTPM's name, so a farm's operator sees which TPM failed.
 */
class VtpmLogger extends Logger {
  readonly #name: string;
  readonly #host: Logger;

  constructor(opts: Record<string, string | number | boolean>, name: string, host: Logger) {
    super(opts);
    this.#name = name;
    this.#host = host;
  }

  override error(msg: string): void {
    super.error(msg);
    this.#host.error(`vTPM '${this.#name}': ${msg}`);
  }
}

class Host {
  readonly base: string;
  readonly log: Logger;
  readonly vtpmLogLevel: number;
  readonly vtpms = new Map<string, Vtpm>();

  constructor(cfg: HostConfig, log: Logger) {
    this.base = cfg.dir;
    this.log = log;
    this.vtpmLogLevel = cfg.vtpmLogLevel;
  }

  /** Starts vTPM `name`; errors name it. */
  async add(name: string, o: VtpmOptions | undefined): Promise<void> {
    if (!NAME.test(name)) throw new CliError(`invalid vTPM name '${name}'`);
    if (this.vtpms.has(name)) throw new CliError(`vTPM '${name}' is already running`);
    try {
      await this.start(name, o);
    } catch (err) {
      const e = new CliError(`vTPM '${name}': ${(err as Error).message}`);
      this.log.error(e.message);
      throw e;
    }
    this.log.info(1, `vTPM '${name}' started`);
  }

  private async start(name: string, o: VtpmOptions | undefined): Promise<void> {
    const dir = join(this.base, name);
    const optsFile = join(dir, 'options.json');
    const opts: VtpmOptions =
      o ??
      (existsSync(optsFile)
        ? (JSON.parse(readFileSync(optsFile, 'utf8')) as VtpmOptions)
        : { tpm2: true, qemu: false });
    mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o700 });
    writeFileSync(optsFile, `${JSON.stringify(opts)}\n`);
    const cfg = parseArgs('socket', vtpmArgv(dir, opts, opts.logLevel ?? this.vtpmLogLevel));
    const log = new VtpmLogger(cfg.log!, name, this.log);
    let stop!: () => Promise<void>;
    await new Promise<void>((resolve, reject) => {
      const done = runServer(cfg, log, {
        signals: false,
        onReady: (s) => {
          stop = s;
          resolve();
        },
      });
      const entry: Vtpm = { stop: () => stop(), done };
      this.vtpms.set(name, entry);
      // The vTPM ends by CMD_SHUTDOWN too: forget it then.
      done.then(
        () => this.forget(name, entry, log),
        (err: unknown) => {
          this.forget(name, entry, log);
          reject(err);
        },
      );
    });
  }

  private forget(name: string, entry: Vtpm, log: Logger): void {
    log.close();
    if (this.vtpms.get(name) !== entry) return;
    this.vtpms.delete(name);
    this.log.info(1, `vTPM '${name}' stopped`);
  }

  async remove(name: string): Promise<void> {
    const v = this.vtpms.get(name);
    if (v === undefined) throw new CliError(`no vTPM '${name}'`);
    await v.stop();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.vtpms.values()].map((v) => v.stop()));
  }

  async request(line: string): Promise<string> {
    const [cmd, name, ...flags] = line.trim().split(/\s+/);
    try {
      if (cmd === 'list') return `ok ${[...this.vtpms.keys()].sort().join(' ')}`.trimEnd();
      if (cmd === 'add' && name !== undefined) {
        await this.add(name, addOptions(name, flags));
        return 'ok';
      }
      if (cmd === 'remove' && name !== undefined) {
        await this.remove(name);
        return 'ok';
      }
      return `error ${USAGE}`;
    } catch (err) {
      return `error ${(err as Error).message.replace(/\s+/g, ' ')}`;
    }
  }
}

/** The flags of `add NAME ...`. */
function addOptions(name: string, flags: readonly string[]): VtpmOptions {
  let logLevel: number | undefined;
  for (const f of flags) {
    const m = /^log-level=(\d{1,2})$/.exec(f);
    if (m !== null) logLevel = Number(m[1]);
    else if (f !== 'tpm1.2' && f !== 'qemu') {
      throw new CliError(`vTPM '${name}': unknown add option '${f}' (${USAGE})`);
    }
  }
  return {
    tpm2: !flags.includes('tpm1.2'),
    qemu: flags.includes('qemu'),
    ...(logLevel !== undefined ? { logLevel } : {}),
  };
}

/** Runs the host until a signal; resolves when every vTPM has stopped. */
export async function hostMain(argv: string[]): Promise<void> {
  refuseInspector();
  const cfg = parseHostArgs(argv);
  if (cfg.help) {
    process.stdout.write((await import('./help.js')).hostUsage());
    return;
  }
  const { dir } = cfg;
  const log = new Logger(cfg.log);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Past this point the process holds TPM secrets; the filter goes in before any vTPM
  // or the management socket serves (new vTPMs need memfd_create, dlopen and sockets,
  // which the profile allows, as it allows them for `socket`).
  setNotDumpable();
  const { seccompInstaller } = await import('./sandbox-setup.js');
  try {
    await seccompInstaller(cfg.seccomp)();
  } catch (err) {
    log.close();
    throw err;
  }
  const host = new Host(cfg, log);
  // Every vTPM a previous host served (it has options.json) is served again.
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'options.json')))
    .map((e) => e.name);
  for (const name of names) {
    // (a vTPM that cannot start is logged, named, and the others still start)
    await host.add(name, undefined).catch(() => {});
  }
  await serveManagement(host, join(dir, 'host.sock'));
  log.close();
}

/** Serves BASE/host.sock until a signal, then stops every vTPM. */
async function serveManagement(host: Host, sockPath: string): Promise<void> {
  rmSync(sockPath, { force: true });
  const conns = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => {});
    const lines = createInterface({ input: sock });
    // One request at a time per connection, answered in order.
    let chain = Promise.resolve();
    lines.on('line', (line) => {
      chain = chain.then(async () => {
        const answer = await host.request(line);
        if (!sock.destroyed) sock.write(`${answer}\n`);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen({ path: sockPath }, resolve));
  await new Promise<void>((resolve) => {
    const stop = () => {
      for (const s of SIGNALS) process.off(s, stop);
      server.close();
      for (const c of conns) c.destroy();
      void host.stopAll().finally(() => {
        rmSync(sockPath, { force: true });
        resolve();
      });
    };
    for (const s of SIGNALS) process.on(s, stop);
  });
}
