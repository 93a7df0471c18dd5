import { existsSync } from 'node:fs';
import { CliError } from '../common/subopts.js';
import type { Config } from './args.js';
import { daemonize } from './daemon.js';
import type { Logger } from './log.js';

/**
 * Set in the environment of the detached server process. swtpm's CUSE front end
 * always runs as a daemon (libfuse forks once the device exists); Node cannot fork,
 * so the command re-runs itself detached and returns when the child reports ready.
 * `TSWTPM_CUSE_FOREGROUND=1` keeps it in the foreground instead.
 */
const DAEMON_ENV = 'TSWTPM_CUSE_DAEMON';
const FOREGROUND_ENV = 'TSWTPM_CUSE_FOREGROUND';

/** The launcher only checks and spawns; the server's modules load in the daemon. */
export const loadCuseServer = () => import('./cuse-serve.js');

/** True in the process that only spawns the detached CUSE server and waits for it. */
export function isCuseLauncher(): boolean {
  return process.env[DAEMON_ENV] !== '1' && process.env[FOREGROUND_ENV] !== '1';
}

/**
 * `tswtpm cuse -n NAME [options]`: creates /dev/NAME and serves the PTM_* ioctls and
 * TPM commands on it until PTM_SHUTDOWN or a signal. Resolves when the process may
 * exit (in the launching process: as soon as the daemon has created the device).
 *
 * @example
 * await runCuse(parseArgs('cuse', ['-n', 'vtpm0', '--tpm2', '--tpmstate', 'dir=/var/lib/vtpm0']), log);
 */
export async function runCuse(
  cfg: Config,
  log: Logger,
  applySeccomp: () => Promise<void> = async () => {},
): Promise<void> {
  if (cfg.printProfiles || cfg.printInfo !== 0) {
    // Answered by the launching process: no device is created.
    const { printInfoCuse } = await loadCuseServer();
    return printInfoCuse(cfg);
  }
  const name = cfg.name;
  if (name === undefined || name === '')
    throw new CliError('Error: Missing name of CUSE device (-n).');
  if (name.includes('/') || name === '.' || name === '..') {
    throw new CliError(`Error: Invalid CUSE device name '${name}'.`);
  }
  const path = `/dev/${name}`;
  if (existsSync(path)) throw new CliError(`Error: A device '${path}' already exists.`);
  if (isCuseLauncher()) return daemonize(DAEMON_ENV);
  const { serveCuse } = await loadCuseServer();
  return serveCuse(cfg, log, name, path, applySeccomp);
}
