import { chownSync, existsSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { CuseSession, cuseRequestChannel } from '../../device/cuse-session.js';
import { TPM_SUCCESS } from '../../protocol/tpm/results.js';
import { parseTpmstate } from '../../storage/uri.js';
import { CUSE_DEVICE, CuseChannel } from '../../transport/cuse.js';
import { resolveUser, runAs } from '../common/runas.js';
import { CliError } from '../common/subopts.js';
import type { Config } from './args.js';
import { notifyReady } from './daemon.js';
import { attachLog, openDevice } from './device-setup.js';
import type { Logger } from './log.js';
import { PcapSink } from './pcap.js';
import { writePid } from './pidfile.js';
import { infoText } from './tpm-info.js';

/** What swtpm 0.8+'s CUSE front end advertises: all but SET_DATAFD and the TCG prefix. */
export const CAPS_CUSE = 0x16fff;

/** The daemon (or a foreground run): storage, device, /dev/cuse, until the end. */
export async function serveCuse(
  cfg: Config,
  log: Logger,
  name: string,
  path: string,
  applySeccomp: () => Promise<void> = async () => {},
): Promise<void> {
  // The launcher is gone once we are ready: a write to its stderr pipe must not kill us.
  process.stderr.on('error', () => {});
  const version = cfg.tpm2 ? '2.0' : '1.2';
  const device = openDevice(cfg, CAPS_CUSE, () => makeStateDir(cfg.tpmstate, cfg.runas));
  if (device === undefined) return; // not reached: cuse.ts sends --print-* to printInfoCuse
  const pcap = cfg.pcap !== undefined ? PcapSink.open(cfg.pcap, version === '2.0') : undefined;

  let pidFile: string | undefined;
  let ready = false;
  let channel: CuseChannel | undefined;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  let exiting = false;
  const exit = async () => {
    if (exiting) return;
    exiting = true;
    try {
      await device.close();
    } catch (err) {
      log.error(`Error while stopping the TPM: ${(err as Error).message}`);
    }
    pcap?.close();
    channel?.close(); // the kernel removes /dev/NAME
    if (pidFile !== undefined) {
      try {
        unlinkSync(pidFile);
      } catch {}
    }
    done();
  };
  device.onShutdown = () => void exit();
  // "Could not start the TPM ..." (INIT and not-need-init) and libtpms' log go to --log.
  attachLog(device, log);

  if (cfg.flags.notNeedInit) {
    if (device.startTpm(0) !== TPM_SUCCESS) {
      await exit();
      throw new CliError('Error: Could not initialize libtpms.');
    }
    if (!device.sendStartup()) {
      await exit();
      throw new CliError('Error: Could not send Startup to the TPM.');
    }
  }

  const onReady = async () => {
    ready = true;
    try {
      // swtpm's CUSE init_done callback: the pid file, then the process owner (the log,
      // the state and /dev/cuse were opened as the starting user).
      if (cfg.pid !== undefined) pidFile = writePid(cfg.pid);
      if (cfg.runas !== undefined) runAs(cfg.runas);
      // then the seccomp filter, then ready (swtpm's init_done order).
      await applySeccomp();
    } catch (err) {
      log.error((err as Error).message);
      process.exitCode = 1;
      void exit();
      return;
    }
    log.info(2, `CUSE TPM device ${path} created`);
    notifyReady();
  };

  const session = new CuseSession(
    device,
    { write: (r) => channel?.write(r) },
    {
      name,
      ...(cfg.maj !== undefined ? { devMajor: cfg.maj } : {}),
      ...(cfg.min !== undefined ? { devMinor: cfg.min } : {}),
      // Inside a chroot the kernel's /dev/NAME is not visible: nothing to wait for.
      onInit: () => waitForNode(path, () => void onReady(), cfg.chroot === undefined ? 500 : 0),
      onProtocolError: (err) => log.info(2, `CUSE: ${err.message}`),
    },
  );
  if (log.level >= 4) {
    cuseRequestChannel.subscribe((m) => log.info(4, `CUSE ${JSON.stringify(m, bigints)}`));
  }
  try {
    channel = CuseChannel.open({
      onRequest: (req) => session.handle(req),
      onClose: (reason, err) => {
        if (!ready) {
          log.error(
            `Error: the kernel refused CUSE device '${name}'${err ? `: ${err.message}` : ''}`,
          );
          process.exitCode = 1;
        } else if (reason !== 'local') log.error(`CUSE channel closed: ${err?.message ?? reason}`);
        void exit();
      },
    });
  } catch (err) {
    await exit();
    const e = err as NodeJS.ErrnoException;
    const hint = e.code === 'ENOENT' ? ' (is the cuse kernel module loaded?)' : '';
    throw new CliError(`Error: Could not open ${CUSE_DEVICE}: ${e.code ?? e.message}${hint}`);
  }

  const onSignal = () => void exit();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onSignal);
  await finished;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  process.off('SIGHUP', onSignal);
}

/**
 * `--print-profiles` / `--print-info` for `tswtpm cuse`: as for socket; with a state
 * location the TPM is started (and state created) so that GetInfo reports on it.
 */
export async function printInfoCuse(cfg: Config): Promise<void> {
  const device = openDevice(cfg, CAPS_CUSE, () => makeStateDir(cfg.tpmstate));
  if (device === undefined) return;
  const rc = device.startTpm(0);
  if (rc === TPM_SUCCESS) process.stdout.write(infoText(device.engine, cfg.printInfo));
  device.engine.stop();
  device.running = false;
  await device.close();
  if (rc !== TPM_SUCCESS) throw new CliError('Error: Could not initialize libtpms.');
}

const bigints = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v);

/**
 * swtpm's CUSE INIT creates a missing state directory (mode 0775), after it changed to
 * the `--runas` user: a directory we create at start-up is given to that user.
 */
function makeStateDir(tpmstate: string | undefined, runas?: string): void {
  let path: string;
  try {
    const bc = parseTpmstate(tpmstate);
    if (bc.kind !== 'dir' || existsSync(bc.path)) return;
    path = bc.path;
  } catch {
    return; // openStorage reports option errors
  }
  try {
    mkdirSync(path, { recursive: true, mode: 0o775 });
  } catch {
    return; // openStorage reports why the state cannot be used
  }
  if (runas !== undefined) {
    const { uid, gid } = resolveUser(runas);
    chownSync(path, uid, gid);
  }
}

/** devtmpfs creates the node shortly after the kernel accepted CUSE_INIT. */
function waitForNode(path: string, then: () => void, triesLeft = 500): void {
  let isDev = false;
  try {
    isDev = statSync(path).isCharacterDevice();
  } catch {}
  if (isDev || triesLeft === 0) then();
  else setTimeout(() => waitForNode(path, then, triesLeft - 1), 10);
}
