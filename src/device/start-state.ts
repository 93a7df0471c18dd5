/**
 * Starting libtpms on the stored state (the MainInit behind INIT and `--flags
 * not-need-init`), with the fallback of `--tpmstate ...,backup` (swtpm master), and the
 * message that names the files libtpms rejected.
 */
import { TPM_FAIL, TPM_SUCCESS } from '../protocol/tpm/results.js';
import { stateFileName } from '../storage/names.js';
import type { Device } from './device.js';
import type { DeviceOptions } from './types.js';

/**
 * MainInit, and with `--tpmstate ...,backup` once more from the backup when the
 * permall is missing or libtpms rejected it. Only a start that succeeds from the
 * backup changes files (the backup becomes the permall, the rejected one is kept as
 * `.bad`); a failed one leaves them exactly as they were.
 */
export function startFromStorage(device: Device): number {
  const { engine, opts } = device;
  const backend = opts.storage.backend;
  if (backend.backupEnabled !== true || backend.beginFromBackup === undefined) {
    return engine.start(opts.version);
  }
  if (
    permallMissing(opts) &&
    beginFromBackup(device, 'The TPM state has no permall; starting from its backup')
  ) {
    return startFromBackup(device);
  }
  const rc = engine.start(opts.version);
  if (rc === TPM_SUCCESS) return rc;
  const why = engine.lastCallbackError ?? rejectedState(opts);
  const retry = 'The TPM state could not be loaded; retrying with its backup';
  if (!beginFromBackup(device, retry, why)) return rc;
  return startFromBackup(device);
}

/**
 * MainInit failed although every blob was read and decoded: libtpms rejected their
 * contents. Names the files it was given, for the start-up message.
 */
export function rejectedState(opts: DeviceOptions): Error | undefined {
  const { backend } = opts.storage;
  const v = opts.version;
  const present = (['permall', 'volatilestate'] as const).filter((n) => {
    try {
      return backend.read(v, n) !== undefined;
    } catch {
      return true;
    }
  });
  if (present.length === 0) return undefined;
  const files = present.map((n) => stateFileName(v, n)).join(', ');
  return new Error(`libtpms rejected the stored state ${files} in ${backend.uri}`);
}

function permallMissing(opts: DeviceOptions): boolean {
  try {
    return opts.storage.backend.read(opts.version, 'permall') === undefined;
  } catch {
    return false; // unreadable: MainInit reports it
  }
}

function beginFromBackup(device: Device, what: string, why?: unknown): boolean {
  const { opts } = device;
  try {
    if (opts.storage.backend.beginFromBackup?.(opts.version) !== true) return false;
  } catch (err) {
    device.lastStorageError = err;
    device.report('Could not read the state backup');
    return false;
  }
  device.lastStorageError = why;
  device.report(what);
  device.lastStorageError = undefined;
  return true;
}

function startFromBackup(device: Device): number {
  const { engine, opts } = device;
  let rc = engine.start(opts.version);
  try {
    opts.storage.backend.endFromBackup?.(rc === TPM_SUCCESS);
  } catch (err) {
    // The backup could not be made the permall: do not run on state that is not stored.
    engine.stop();
    device.lastStorageError = err;
    rc = TPM_FAIL;
  }
  return rc;
}
