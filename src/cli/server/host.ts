/**
 * `tswtpm host --dir BASE`: many vTPMs served by one process (issue 12), each on its
 * own copy of libtpms. Every vTPM NAME lives in BASE/NAME: its state in `state/`, its
 * control channel `ctrl.sock` (UnixIO: CMD_SET_DATAFD works) and, unless it was added
 * for QEMU, its data channel `tpm.sock`; `options.json` remembers how it was added, so
 * a restarted host serves the same vTPMs again.
 *
 * The management socket BASE/host.sock takes one request per line and answers one line:
 *   add NAME [tpm1.2] [qemu]  → `ok` or `error <message>` (starts the vTPM; a new one is
 *                               manufactured, an existing state is loaded)
 *   remove NAME               → `ok`: TPM2_Shutdown, sockets closed; the state is kept
 *   list                      → `ok NAME NAME ...`
 * SIGTERM, SIGINT and SIGHUP stop every vTPM and end the process.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CliError } from '../common/subopts.js';
import { parseArgs } from './args.js';
import { Logger } from './log.js';
import { runServer } from './server.js';

interface VtpmOptions {
  readonly tpm2: boolean;
  /** Only a control socket: QEMU passes the data channel with CMD_SET_DATAFD. */
  readonly qemu: boolean;
}

interface Vtpm {
  readonly stop: () => Promise<void>;
  readonly done: Promise<void>;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** The `tswtpm socket` command line of one vTPM. */
function vtpmArgv(dir: string, o: VtpmOptions): string[] {
  return [
    ...(o.tpm2 ? ['--tpm2'] : []),
    '--tpmstate',
    `dir=${join(dir, 'state')}`,
    ...(o.qemu ? [] : ['--server', `type=unixio,path=${join(dir, 'tpm.sock')},mode=0600`]),
    '--ctrl',
    `type=unixio,path=${join(dir, 'ctrl.sock')},mode=0600`,
    '--flags',
    o.qemu ? 'startup-clear' : 'not-need-init,startup-clear',
  ];
}

class Host {
  readonly base: string;
  readonly log: Logger;
  readonly vtpms = new Map<string, Vtpm>();

  constructor(base: string, log: Logger) {
    this.base = base;
    this.log = log;
  }

  async add(name: string, o: VtpmOptions | undefined): Promise<void> {
    if (!NAME.test(name)) throw new CliError(`invalid vTPM name '${name}'`);
    if (this.vtpms.has(name)) throw new CliError(`vTPM '${name}' is already running`);
    const dir = join(this.base, name);
    const optsFile = join(dir, 'options.json');
    const opts: VtpmOptions =
      o ??
      (existsSync(optsFile)
        ? (JSON.parse(readFileSync(optsFile, 'utf8')) as VtpmOptions)
        : { tpm2: true, qemu: false });
    mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o700 });
    writeFileSync(optsFile, `${JSON.stringify(opts)}\n`);
    let stop!: () => Promise<void>;
    const ready = new Promise<void>((resolve, reject) => {
      const done = runServer(parseArgs('socket', vtpmArgv(dir, opts)), this.log, {
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
        () => this.forget(name, entry),
        (err: unknown) => {
          this.forget(name, entry);
          reject(err);
        },
      );
    });
    await ready;
  }

  private forget(name: string, entry: Vtpm): void {
    if (this.vtpms.get(name) === entry) this.vtpms.delete(name);
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
        const bad = flags.find((f) => f !== 'tpm1.2' && f !== 'qemu');
        if (bad !== undefined) throw new CliError(`unknown add option '${bad}'`);
        await this.add(name, { tpm2: !flags.includes('tpm1.2'), qemu: flags.includes('qemu') });
        return 'ok';
      }
      if (cmd === 'remove' && name !== undefined) {
        await this.remove(name);
        return 'ok';
      }
      return 'error usage: add NAME [tpm1.2] [qemu] | remove NAME | list';
    } catch (err) {
      return `error ${(err as Error).message.replace(/\s+/g, ' ')}`;
    }
  }
}

function parseHostArgs(argv: string[]): { dir: string } {
  let dir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--dir') dir = argv[++i];
    else if (a.startsWith('--dir=')) dir = a.slice(6);
    else throw new CliError(`tswtpm host: unknown option '${a}' (usage: tswtpm host --dir BASE)`);
  }
  if (dir === undefined) throw new CliError('tswtpm host: --dir BASE is required');
  return { dir };
}

/** Runs the host until a signal; resolves when every vTPM has stopped. */
export async function hostMain(argv: string[]): Promise<void> {
  const { dir } = parseHostArgs(argv);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const host = new Host(dir, new Logger(undefined));
  // Every vTPM a previous host served (it has options.json) is served again.
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'options.json')))
    .map((e) => e.name);
  for (const name of names) {
    try {
      await host.add(name, undefined);
    } catch (err) {
      process.stderr.write(`tswtpm: vTPM '${name}' not started: ${(err as Error).message}\n`);
    }
  }
  const sockPath = join(dir, 'host.sock');
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
