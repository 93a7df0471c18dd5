import { Device } from '../../device/device.js';
import { Engine } from '../../engine/engine.js';
import type { Config } from './args.js';
import type { Logger } from './log.js';
import { type ServerStorage, openStorage } from './storage-setup.js';
import { earlyInfo, resolveProfile } from './tpm-info.js';

/**
 * The device of a server's one TPM, on an engine opened for it and asked first what
 * swtpm answers before any state is opened: `--print-profiles` or `--print-info`
 * without a state location (printed; undefined is returned), then the `--profile`
 * checks. `beforeState` runs next, then the state is opened and the device created; it
 * owns the engine from then on. Nothing is left open when this throws.
 */
export function openDevice(
  cfg: Config,
  caps: number,
  beforeState: () => void = () => {},
): Device | undefined {
  const version = cfg.tpm2 ? '2.0' : '1.2';
  const engine = Engine.open();
  try {
    const early = earlyInfo(cfg, version, engine);
    if (early !== undefined) {
      engine.close();
      process.stdout.write(early);
      return undefined;
    }
    const profile = resolveProfile(cfg, engine);
    beforeState();
    return createDevice(cfg, caps, openStorage(cfg, version), profile, engine);
  } catch (err) {
    engine.close();
    throw err;
  }
}

/**
 * The device every front end builds from the command line, with its storage; it owns
 * `engine` when given, else opens its own.
 */
export function createDevice(
  cfg: Config,
  caps: number,
  storage?: ServerStorage,
  profile?: string,
  engine?: Engine,
): Device {
  const version = cfg.tpm2 ? '2.0' : '1.2';
  const store = storage ?? openStorage(cfg, version);
  return new Device({
    version,
    storage: store,
    flags: {
      notNeedInit: cfg.flags.notNeedInit,
      startup: cfg.flags.startup ?? 'none',
      disableAutoShutdown: cfg.flags.disableAutoShutdown,
    },
    locality: cfg.locality,
    caps,
    incomingMigration: cfg.migration.incoming,
    releaseLockOutgoing: cfg.migration.releaseLockOutgoing,
    lockStorage: store.lockWanted,
    ...(profile !== undefined ? { profile } : {}),
    ...(engine !== undefined ? { engine } : {}),
  });
}

/**
 * Connects a device to `--log`: its error reports ("Could not start the TPM ...") and,
 * as swtpm does, libtpms' own log on the same fd (its trace from level 5 on). Call
 * before the TPM is first started.
 */
export function attachLog(device: Device, log: Logger): void {
  device.onError = (msg) => log.error(msg);
  const lib = log.libtpmsLog();
  if (lib !== undefined) device.engine.setDebug(lib.fd, lib.level, lib.prefix);
}
