import { openSync, readFileSync } from 'node:fs';
import { requireKoffi } from '../../engine/libtpms.js';
import { refuseInspector, setNotDumpable } from '../common/hardening.js';
import { runAs } from '../common/runas.js';
import { CliError } from '../common/subopts.js';
import { errText } from '../common/sys.js';
import { type Config, type Iface, parseArgs } from './args.js';
import { Logger } from './log.js';
import type { SeccompInstaller } from './sandbox-setup.js';
import { startupStep } from './startup-trace.js';

/** Our version; `-v` prints it in swtpm's format. */
export function packageVersion(): string {
  const url = new URL('../../../../package.json', import.meta.url);
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
  // Not a swtpm interface: many vTPMs in one process (issue 12).
  if (first === 'host') {
    try {
      return await (await import('./host.js')).hostMain(argv.slice(1));
    } catch (err) {
      return fatal(err);
    }
  }
  if (!IFACES.includes(first as Iface)) {
    process.stderr.write(`Unsupported TPM interface type '${first}'.\n`);
    process.stderr.write(await usage(undefined));
    process.exitCode = 1;
    return;
  }
  const iface = first as Iface;
  startupStep('main');
  try {
    refuseInspector();
  } catch (err) {
    return fatal(err);
  }
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
  startupStep('options');
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
  const daemonChild = process.env[DAEMON_ENV] === '1';
  if (iface !== 'cuse' && cfg.daemon && !daemonChild) {
    // Everything below runs in the daemon, as in swtpm after daemonize_prep().
    const { daemonize, inheritedFds } = await import('./daemon.js');
    return await daemonize(DAEMON_ENV, inheritedFds(cfg));
  }
  let applySeccomp: SeccompInstaller;
  let log: Logger;
  try {
    // swtpm opens the character device while parsing the options, then enters the
    // chroot, then changes the process owner, all before it opens the log, the
    // sockets, the pid file or the state. CUSE changes the owner once the device
    // exists (cuse-serve.ts).
    if (iface === 'chardev') openChardev(cfg);
    let launcher: boolean;
    ({ applySeccomp, launcher } = await sandboxStart(cfg));
    if (iface !== 'cuse' && cfg.runas !== undefined) runAs(cfg.runas);
    // With --chroot the log file is a path inside DIR: only the chrooted child opens it.
    log = new Logger(launcher && cfg.chroot !== undefined ? undefined : cfg.log);
  } catch (err) {
    return fatal(err);
  }
  // Past this point the process holds the TPM's secrets.
  setNotDumpable();
  try {
    if (iface === 'cuse') {
      // The CUSE front end is loaded only when asked for.
      const mod = (await import(CUSE_MODULE)) as typeof import('./cuse.js');
      await mod.runCuse(cfg, log, applySeccomp);
    } else {
      const { notifyReady } = await import('./daemon.js');
      const { runServer } = await import('./server.js');
      await runServer(cfg, log, {
        beforeReady: applySeccomp,
        onReady: () => {
          if (daemonChild) notifyReady();
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
    } else {
      log.error(`Error: ${(err as Error).message}`);
      process.exitCode = 1;
    }
    // A start-up error may leave a listener or a device read behind: swtpm exits.
    if (iface !== 'cuse') process.exit(process.exitCode);
  }
}

/**
 * Checks `--seccomp` (swtpm does it after --print-capabilities) and, with `--chroot`,
 * enters DIR before anything else is opened: the log file, pid file, sockets and
 * state are then all inside it. The CUSE launcher leaves both to its child.
 */
async function sandboxStart(
  cfg: Config,
): Promise<{ applySeccomp: SeccompInstaller; launcher: boolean }> {
  const sandbox = await import('./sandbox-setup.js');
  // (loaded here anyway: by libseccomp's binding, or by setNotDumpable() right after)
  requireKoffi();
  startupStep('koffi');
  const applySeccomp = sandbox.prepareSeccomp(cfg);
  // (the launcher of `-d` has returned before this)
  const launcher =
    cfg.iface === 'cuse' &&
    ((await import(CUSE_MODULE)) as typeof import('./cuse.js')).isCuseLauncher();
  if (cfg.chroot !== undefined && !launcher) {
    // An ESM import() resolves (and stats) its file once per importing module: what
    // main() imports after the chroot must be imported from here, before it.
    if (cfg.iface !== 'cuse') await Promise.all([import('./daemon.js'), import('./server.js')]);
    await sandbox.enterChroot(cfg, cfg.chroot);
  }
  startupStep('sandbox');
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

/** `-c DEVICE`: opened at start-up as root, before --runas (swtpm's message). */
function openChardev(cfg: Config): void {
  if (cfg.chardev === undefined || cfg.server?.fd !== undefined) return;
  try {
    cfg.chardevFd = openSync(cfg.chardev, 'r+');
  } catch (err) {
    throw new CliError(`Cannot open ${cfg.chardev}: ${errText(err)}`);
  }
}
