import { readFileSync } from 'node:fs';
import { type Config, type Iface, parseArgs } from './args.js';
import { Logger } from './log.js';
import type { SeccompInstaller } from './sandbox-setup.js';
import { CliError } from './subopts.js';

/** Our version; `-v` prints it in swtpm's format. */
export function packageVersion(): string {
  const url = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

const CUSE_MODULE = './cuse.js';
/** Set in the environment of the detached child of `socket|chardev -d`. */
const DAEMON_ENV = 'TSWTPM_DAEMON';

// The help text and --print-capabilities (which loads the engine) are imported only on
// the paths that print them: a server start never pays for them.
const usage = async (iface: Iface | undefined) => (await import('./help.js')).usage(iface);
const capabilities = async (cfg: Config) =>
  (await import('./capabilities.js')).printCapabilities(cfg);

const IFACES: readonly Iface[] = ['socket', 'chardev', 'cuse'];

/**
 * `tswtpm socket|chardev|cuse [options]`: swtpm's command line. Exit codes: 0 on a
 * clean shutdown or after -h/-v/--print-*, 1 on any error.
 */
export async function main(argv: string[]): Promise<void> {
  const first = argv[0];
  if (first === '-h' || first === '--help') {
    process.stdout.write(await usage(undefined));
    return;
  }
  if (first === '-v' || first === '--version') {
    process.stdout.write(versionLine());
    return;
  }
  if (first === undefined) return fatal('Missing TPM interface type.', false);
  if (!IFACES.includes(first as Iface)) {
    process.stderr.write(`Unsupported TPM interface type '${first}'.\n`);
    process.stderr.write(await usage(undefined));
    process.exitCode = 1;
    return;
  }
  const iface = first as Iface;
  let cfg: Config;
  try {
    cfg = parseArgs(iface, argv.slice(1));
  } catch (err) {
    if (
      err instanceof CliError &&
      /unrecognized|invalid option|requires an|ambiguous|doesn't allow/.test(err.message)
    ) {
      process.stderr.write(`${err.message}\n${await usage(iface)}`);
      process.exitCode = 1;
      return;
    }
    return fatal(err);
  }
  if (cfg.help) {
    process.stdout.write(await usage(iface));
    return;
  }
  if (cfg.version) {
    process.stdout.write(versionLine());
    return;
  }
  if (cfg.printCapabilities) {
    process.stdout.write(`${await capabilities(cfg)}\n`);
    return;
  }
  if (cfg.tpm2 && cfg.flags.startup === 'deactivated') {
    // swtpm prints this and exits with status 0.
    process.stderr.write('tswtpm: TPM 2 does not support startup deactivated.\n');
    return;
  }
  let applySeccomp: SeccompInstaller;
  let launcher: boolean;
  try {
    ({ applySeccomp, launcher } = await sandboxStart(cfg));
  } catch (err) {
    return fatal(err);
  }
  let log: Logger;
  try {
    // With --chroot the log file is a path inside DIR: only the chrooted child opens it.
    log = new Logger(launcher && cfg.chroot !== undefined ? undefined : cfg.log);
  } catch (err) {
    return fatal(err);
  }
  try {
    if (iface === 'cuse') {
      // The CUSE front end is loaded only when asked for.
      const mod = (await import(CUSE_MODULE)) as typeof import('./cuse.js');
      await mod.runCuse(cfg, log, applySeccomp);
    } else {
      const { daemonize, notifyReady } = await import('./daemon.js');
      if (cfg.daemon && process.env[DAEMON_ENV] !== '1') return await daemonize(DAEMON_ENV);
      const { runServer } = await import('./server.js');
      await runServer(cfg, log, {
        beforeReady: applySeccomp,
        onReady: () => {
          if (process.env[DAEMON_ENV] === '1') notifyReady();
        },
      });
      // Like swtpm, the process ends with its main loop: a blocking read() on a
      // character device or pty that is still in the thread pool must not keep it.
      if (!cfg.printStates) process.exit(process.exitCode ?? 0);
    }
  } catch (err) {
    if (err instanceof CliError) {
      log.error(err.message);
      process.exitCode = err.exitCode;
      return;
    }
    log.error(`Error: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}

/**
 * Checks `--seccomp` (swtpm does it after --print-capabilities) and, with `--chroot`,
 * enters DIR before anything else is opened: the log file, pid file, sockets and
 * state are then all inside it. A launcher (`-d`, CUSE) leaves both to its child.
 */
async function sandboxStart(
  cfg: Config,
): Promise<{ applySeccomp: SeccompInstaller; launcher: boolean }> {
  const sandbox = await import('./sandbox-setup.js');
  const applySeccomp = sandbox.prepareSeccomp(cfg);
  const launcher =
    cfg.iface === 'cuse'
      ? ((await import(CUSE_MODULE)) as typeof import('./cuse.js')).isCuseLauncher()
      : cfg.daemon && process.env[DAEMON_ENV] !== '1';
  if (cfg.chroot !== undefined && !launcher) {
    // An ESM import() resolves (and stats) its file once per importing module: what
    // main() imports after the chroot must be imported from here, before it.
    if (cfg.iface !== 'cuse') await Promise.all([import('./daemon.js'), import('./server.js')]);
    await sandbox.enterChroot(cfg, cfg.chroot);
  }
  return { applySeccomp, launcher };
}

function versionLine(): string {
  return `TPM emulator version ${packageVersion()}, Copyright (c) 2026 tswtpm authors (swtpm 0.10 compatible)\n`;
}

function fatal(err: unknown, prefix = true): void {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(prefix ? `tswtpm: ${msg}\n` : `${msg}\n`);
  process.exitCode = err instanceof CliError ? err.exitCode : 1;
}
