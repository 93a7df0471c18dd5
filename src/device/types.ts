import type { Engine } from '../engine/engine.js';
import type { NvStore, StateName, TpmVersion } from '../engine/types.js';
import type { StateBackend } from '../storage/types.js';

/** `--flags`: how the TPM is started at launch (swtpm §3.6). */
export interface StartFlags {
  /** Start libtpms at launch, as an INIT with flags 0 would. */
  readonly notNeedInit: boolean;
  /** Startup command sent once started; `none` sends nothing. */
  readonly startup: 'clear' | 'state' | 'deactivated' | 'none';
  /** Do not send TPM2_Shutdown before INIT/STOP/SHUTDOWN/exit (0.8+). */
  readonly disableAutoShutdown: boolean;
}

/** `--locality` options. */
export interface LocalityOptions {
  readonly rejectLocality4: boolean;
  readonly allowSetLocality: boolean;
}

/** The state files as the device needs them: NV callbacks plus blob transfer. */
export interface DeviceStorage extends NvStore {
  readonly backend: StateBackend;
  readonly hasFileKey: boolean;
  readonly hasMigrationKey: boolean;
  /**
   * The GET_STATEBLOB payload for `name` (swtpm header + migration TLVs), built from the
   * stored file, or from `plain` when given (volatile state taken from the running TPM).
   * Undefined when there is no such blob. Throws an error carrying `result`.
   */
  getMigrationBlob(
    name: StateName,
    decrypted: boolean,
    plain?: Uint8Array,
  ): { blob: Uint8Array; encrypted: boolean } | undefined;
  /**
   * Unwraps a SET_STATEBLOB payload to the libtpms blob (empty: clear that state).
   * `name` undefined is an unknown blob type, rejected after the header checks as in
   * swtpm. Throws an error carrying `result`.
   */
  decodeIncomingBlob(name: StateName | undefined, stateFlags: number, blob: Uint8Array): Uint8Array;
}

export interface DeviceOptions {
  readonly version: TpmVersion;
  readonly storage: DeviceStorage;
  readonly flags: StartFlags;
  readonly locality: LocalityOptions;
  /** PTM_CAP_* mask this front end advertises. */
  readonly caps: number;
  /** `--migration incoming`: do not lock storage until a blob is set or a command runs. */
  readonly incomingMigration: boolean;
  /** `--migration release-lock-outgoing` (swtpm releases after savestate regardless). */
  readonly releaseLockOutgoing: boolean;
  /** Whether the state backend wants a lock at all (`--tpmstate ...,lock=false`). */
  readonly lockStorage: boolean;
  /**
   * `--profile` JSON (TPM 2, libtpms 0.10+): set before the first successful start
   * only, and only onto a TPM that start manufactures (swtpm 0.10).
   */
  readonly profile?: string;
  /**
   * The engine to run on, when the caller opened it already (the CLI server asks it
   * about profiles and `--print-info` first). The device owns it from then on and
   * closes it in `close()`. Without one the device opens its own (`Engine.open()`).
   */
  readonly engine?: Engine;
}
