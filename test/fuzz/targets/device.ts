/**
 * A real Device (libtpms through koffi, as in production) on in-memory storage for
 * the session fuzz targets. Each fuzz input starts from the same state: the TPM
 * stopped, libtpms' cached blobs replaced, and the storage holding the permanent state
 * manufactured once at load time.
 */
import { Device } from '../../../src/device/device.js';
import type { DeviceStorage } from '../../../src/device/types.js';
import type { StateName } from '../../../src/engine/types.js';
import { MemoryBackend } from '../../../src/storage/memory.js';

type Files = Map<StateName, Uint8Array>;

function memoryStorage(files: Files): DeviceStorage {
  return {
    backend: new MemoryBackend(),
    hasFileKey: false,
    hasMigrationKey: false,
    load: (n) => files.get(n),
    store: (n, d) => {
      files.set(n, Uint8Array.from(d));
    },
    delete: (n) => files.delete(n),
    getMigrationBlob(name, _decrypted, plain) {
      const blob = plain ?? files.get(name);
      return blob === undefined ? undefined : { blob, encrypted: false };
    },
    decodeIncomingBlob: (_name, _flags, blob) => blob,
  };
}

export interface FuzzDevice {
  readonly dev: Device;
  /** Back to the state every input starts from. */
  reset(): void;
}

/** CUSE capabilities (all but SET_DATAFD's socket-only peers); swtpm's 0x16fff. */
const CAPS = 0x16fff;

export function makeFuzzDevice(): FuzzDevice {
  const files: Files = new Map();
  const dev = new Device({
    version: '2.0',
    storage: memoryStorage(files),
    flags: { notNeedInit: false, startup: 'none', disableAutoShutdown: false },
    locality: { rejectLocality4: false, allowSetLocality: false },
    caps: CAPS,
    incomingMigration: false,
    releaseLockOutgoing: false,
    lockStorage: true,
  });
  // Manufacture once, so an INIT in an input only loads the permanent state.
  if (dev.startTpm(0) !== 0) throw new Error('fuzz device: libtpms did not start');
  dev.stopTpm();
  const snapshot = new Map(files);
  const permall = snapshot.get('permall');
  if (permall === undefined) throw new Error('fuzz device: no permanent state');
  const reset = () => {
    dev.stopTpm();
    // Replace what an input cached with SET_STATEBLOB. Not SetState(PERMANENT, NULL):
    // libtpms 0.9.2 then crashes on a volatile blob (device/control.ts refuses one).
    dev.engine.setState(1, permall);
    dev.engine.setState(2, null);
    dev.engine.setState(3, null);
    dev.permanentCleared = false;
    dev.engine.locality = 0;
    files.clear();
    for (const [k, v] of snapshot) files.set(k, v);
  };
  return { dev, reset };
}
