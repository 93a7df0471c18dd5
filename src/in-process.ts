import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Config, parseArgs } from './cli/server/args.js';
import { Logger } from './cli/server/log.js';
import { runServer } from './cli/server/server.js';
import { ControlClient } from './client/control.js';
import { TpmClient } from './client/tpm.js';

export interface InProcessOptions {
  /** TPM 2.0 (default) or TPM 1.2. */
  readonly tpm2?: boolean;
  /** Use (and keep) this state directory; default: a new one removed by close(). */
  readonly stateDir?: string;
  /** Start the TPM and send Startup(CLEAR) (default), or wait for CMD_INIT. */
  readonly startup?: 'clear' | 'none';
  /** More `tswtpm socket` options, e.g. `['--key', 'file=/path']`. */
  readonly args?: readonly string[];
}

export interface InProcessTpm {
  /** Control channel client (Unix socket). */
  readonly control: ControlClient;
  /** Data channel client (Unix socket, persistent connection). */
  readonly tpm: TpmClient;
  readonly ctrlPath: string;
  readonly dataPath: string;
  readonly stateDir: string;
  /** Stops the TPM (automatic TPM2_Shutdown), closes the sockets, removes temp files. */
  close(): Promise<void>;
}

/**
 * Runs a TPM in the calling process: the same server as `tswtpm socket`, on Unix sockets
 * in a temporary directory, without spawning anything. Call it as often as you like,
 * also concurrently: each TPM runs on its own copy of libtpms (the first on the normally
 * loaded library, the others on private in-memory copies), with its own state, lock,
 * locality and control channel.
 *
 * @example
 * const [a, b] = await Promise.all([startTpmInProcess(), startTpmInProcess()]);
 * const rsp = await a.tpm.transmit(getRandomCommand);
 * await Promise.all([a.close(), b.close()]);
 */
export async function startTpmInProcess(opts: InProcessOptions = {}): Promise<InProcessTpm> {
  const dir = mkdtempSync(join(tmpdir(), 'tswtpm-'));
  const stateDir = opts.stateDir ?? join(dir, 'state');
  if (opts.stateDir === undefined) mkdirSync(stateDir);
  const dataPath = join(dir, 'tpm.sock');
  const ctrlPath = `${dataPath}.ctrl`;
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  let cfg: Config;
  try {
    cfg = inProcessConfig(opts, stateDir, dataPath, ctrlPath);
  } catch (err) {
    cleanup();
    throw err;
  }
  let stop!: () => Promise<void>;
  let done!: Promise<void>;
  const ready = new Promise<void>((resolve, reject) => {
    done = runServer(cfg, new Logger(undefined), {
      signals: false,
      onReady: (s) => {
        stop = s;
        resolve();
      },
    });
    done = done.then(cleanup, (err: unknown) => {
      cleanup();
      reject(err);
    });
  });
  await ready;
  const control = new ControlClient({ path: ctrlPath });
  const tpm = new TpmClient({ path: dataPath });
  return {
    control,
    tpm,
    ctrlPath,
    dataPath,
    stateDir,
    async close() {
      await tpm.close();
      await stop();
      await done;
    },
  };
}

/**
 * The `tswtpm socket` configuration of an in-process TPM. Paths never go through swtpm's
 * comma-separated option syntax (a ',' in a path would start another option): the
 * state location and the sockets are set as structures.
 */
function inProcessConfig(
  opts: InProcessOptions,
  stateDir: string,
  dataPath: string,
  ctrlPath: string,
): Config {
  const cfg = parseArgs('socket', [
    ...(opts.tpm2 === false ? [] : ['--tpm2']),
    ...((opts.startup ?? 'clear') === 'clear' ? ['--flags', 'not-need-init,startup-clear'] : []),
    ...(opts.args ?? []),
  ]);
  if (cfg.tpmstate === undefined) {
    cfg.backend = { kind: 'dir', path: stateDir, lock: true, backup: false, fsync: false };
  }
  const unix = (path: string) =>
    ({ type: 'unixio', path, mode: 0o600, disconnect: false, terminate: false }) as const;
  cfg.server ??= unix(dataPath);
  cfg.ctrl ??= unix(ctrlPath);
  return cfg;
}
