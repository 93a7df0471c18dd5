/**
 * One TPM: one copy of libtpms (its own globals, callbacks and store). libtpms keeps
 * all TPM state in globals and is not thread-safe, so a process holds one copy per
 * TPM (copies.ts, pool.ts) and each copy has exactly one call in flight: ordinary commands
 * run synchronously on the main thread (a few µs), the long key-generating ones on a
 * koffi worker thread so the event loop stays free and `cancel()` can reach them.
 * The engine does not queue: while an async command runs every libtpms-touching
 * method except `cancel()` throws `EngineError` with code `ENGINE_BUSY`.
 */
import { NativeBuffers } from './buffers.js';
import { TPM_FAIL, TPM_SUCCESS, makeCallbacks } from './callbacks.js';
import { isLongCommand } from './commands.js';
import { EngineError, type StateResult } from './errors.js';
import {
  type Libtpms,
  TPMLIB_STATE_PERMANENT,
  TPMLIB_STATE_SAVE_STATE,
  TPMLIB_STATE_VOLATILE,
  TPMLIB_TPM_VERSION_1_2,
  TPMLIB_TPM_VERSION_2,
} from './libtpms.js';
import { giveBackLibtpms, takeLibtpms } from './pool.js';
import type { BufferSizeInfo, NvStore, TpmVersion } from './types.js';

export { EngineError, type EngineErrorCode, type StateResult } from './errors.js';

/** Blob types as swtpm's control channel numbers them (PTM_BLOB_TYPE_*). */
export type BlobType = 1 | 2 | 3;
/** PTM_BLOB_TYPE_* → enum TPMLIB_StateType (3 SAVESTATE is libtpms bit value 4). */
const LIBTPMS_STATE: Readonly<Record<BlobType, number>> = {
  1: TPMLIB_STATE_PERMANENT,
  2: TPMLIB_STATE_VOLATILE,
  3: TPMLIB_STATE_SAVE_STATE,
};

/**
 * @example
 * const engine = Engine.open();
 * engine.setStore(store);
 * if (engine.start('2.0') !== 0) throw new Error('MainInit failed');
 * const rsp = await engine.execute(startupClear);
 * engine.close();
 */
export class Engine {
  /** Locality reported to libtpms on every TPM 2 command; settable at any time. */
  locality = 0;
  /** First error thrown by an NV callback during the most recent engine call. */
  lastCallbackError: unknown = undefined;
  /** Transport-level result of the last TPMLIB_Process (practically always 0). */
  lastProcessRc = 0;

  readonly #lib: Libtpms;
  /** `#lib.Process`, held here: each copy's binding is its own object (one load per command saved). */
  readonly #process: Libtpms['Process'];
  readonly #buf: NativeBuffers;
  #store: NvStore | undefined;
  #tpmVersion: TpmVersion | undefined;
  #idle: Promise<void> | undefined;
  #closed = false;
  /** What #syncLocality last told the copy (undefined: not yet, the copy may be reused). */
  #localityCallback: boolean | undefined;

  /**
   * An engine on a copy of libtpms that no other TPM of this process uses (pool.ts):
   * the process' first TPM gets the normally loaded library, later ones private
   * copies. Stopped, without a store; `close()` gives the copy back.
   */
  static open(): Engine {
    const lib = takeLibtpms();
    try {
      return new Engine(lib);
    } catch (err) {
      giveBackLibtpms(lib);
      throw err;
    }
  }

  /** Wraps a copy taken for it and points the copy's callbacks at this engine. */
  private constructor(lib: Libtpms) {
    this.#lib = lib;
    this.#process = lib.Process;
    this.#buf = new NativeBuffers(lib);
    lib.setCallbacks(
      makeCallbacks(lib, {
        store: () => this.#store,
        locality: () => this.locality,
        onError: (err) => {
          this.lastCallbackError ??= err;
        },
      }),
    );
  }

  /** TPMLIB_SetProfile (libtpms >= 0.10 only, looked up on first use); call before start(). */
  get setProfile(): ((profile: string) => number) | undefined {
    const set = this.#lib.SetProfile;
    if (set === undefined) return undefined;
    return (profile: string) => {
      this.#enter();
      return set(profile);
    };
  }

  /** Where the NV callbacks read and write; swap only while stopped (never while busy). */
  setStore(store: NvStore | undefined): void {
    this.#assertIdle();
    this.#store = store;
  }

  get store(): NvStore | undefined {
    return this.#store;
  }

  get running(): boolean {
    return this.#tpmVersion !== undefined;
  }

  /** TPM family of the running TPM, undefined while stopped. */
  get tpmVersion(): TpmVersion | undefined {
    return this.#tpmVersion;
  }

  /** True while a long command runs on the worker thread. */
  get busy(): boolean {
    return this.#idle !== undefined;
  }

  /** The copy this engine runs on: `libtpms.so.0` or a memfd copy's `/proc/self/fd/N`. */
  get libraryPath(): string {
    return this.#lib.path;
  }

  /** TPMLIB_GetVersion: major << 16 | minor << 8 | micro, e.g. 0x000902. */
  get libraryVersion(): number {
    return this.#lib.GetVersion();
  }

  /** Resolves when no async command is in flight (never rejects). */
  whenIdle(): Promise<void> {
    return this.#idle ?? Promise.resolve();
  }

  /**
   * TPMLIB_ChooseTPMVersion alone, so GetInfo and SetBufferSize answer for `version`
   * before the TPM is started (swtpm chooses at launch). A no-op while running.
   */
  choose(version: TpmVersion): number {
    this.#enter();
    if (this.#tpmVersion !== undefined) return TPM_SUCCESS;
    return this.#lib.ChooseTPMVersion(
      version === '2.0' ? TPMLIB_TPM_VERSION_2 : TPMLIB_TPM_VERSION_1_2,
    );
  }

  /**
   * TPMLIB_ChooseTPMVersion + TPMLIB_MainInit. MainInit manufactures a TPM when the
   * store has no `permall`, and resumes from `volatilestate` when present.
   * Returns 0 or the libtpms result (see `lastCallbackError` for store failures).
   */
  start(version: TpmVersion): number {
    this.#enter();
    this.#syncLocality(version);
    const v = version === '2.0' ? TPMLIB_TPM_VERSION_2 : TPMLIB_TPM_VERSION_1_2;
    let rc = this.#lib.ChooseTPMVersion(v);
    if (rc !== TPM_SUCCESS) return rc;
    rc = this.#lib.MainInit();
    // libtpms 0.9.2 ignores a failed storedata(permall) while manufacturing and runs
    // on with state that was never persisted (the next start would manufacture new
    // seeds). Any callback failure therefore fails start().
    if (rc === TPM_SUCCESS && this.lastCallbackError !== undefined) rc = TPM_FAIL;
    if (rc !== TPM_SUCCESS) {
      // MainInit locks the version choice even when it fails; Terminate unlocks it
      // so that a later start() (e.g. after fixing the state) can choose again.
      this.#lib.Terminate();
      return rc;
    }
    this.#tpmVersion = version;
    return TPM_SUCCESS;
  }

  /**
   * Ends this engine and gives its copy back for another TPM (a no-op when closed).
   * TPMLIB_Terminate (without TPM2_Shutdown: a device sends that first), and the copy
   * is left with libtpms' log off, no profile and no blob cached by an earlier
   * SetState (choosing the other TPM version discards them; the next start() chooses
   * again). Throws ENGINE_BUSY while a command runs on the worker thread.
   */
  close(): void {
    if (this.#closed) return;
    this.stop();
    this.#store = undefined;
    this.#lib.ChooseTPMVersion(TPMLIB_TPM_VERSION_2);
    this.#lib.ChooseTPMVersion(TPMLIB_TPM_VERSION_1_2);
    // libtpms >= 0.10: a profile set for a start that never happened must not reach the
    // next TPM; NULL selects the default profile (from reading; 0.9.2 has no profiles).
    this.#lib.SetProfile?.(null);
    this.#lib.SetDebugLevel(0);
    this.#lib.SetDebugFD(-1);
    this.#lib.SetDebugPrefix(null);
    this.#lib.setCallbacks(undefined);
    this.#buf.free();
    this.#closed = true;
    giveBackLibtpms(this.#lib);
  }

  /** TPMLIB_Terminate; a no-op when not running. Does not send TPM2_Shutdown. */
  stop(): void {
    this.#enter();
    if (this.#tpmVersion === undefined) return;
    this.#tpmVersion = undefined;
    this.#lib.Terminate();
  }

  /**
   * Runs one TPM command. Ordinary commands answer synchronously; CreatePrimary,
   * Create, CreateLoaded (TPM 2) and TakeOwnership, CreateWrapKey (TPM 1.2) return a
   * Promise and run on a worker thread. The result is always a full TPM response.
   */
  execute(cmd: Uint8Array): Uint8Array | Promise<Uint8Array> {
    const version = this.#enterRunning();
    if (isLongCommand(version, cmd)) return this.#executeAsync(cmd);
    this.#syncLocality(version);
    const rsp = this.#buf.rsp;
    this.lastProcessRc = this.#process(rsp, rsp + 8n, rsp + 12n, cmd, cmd.length);
    return this.#buf.response(version);
  }

  /** Runs any command on the worker thread (what `execute` does for long ones). */
  executeAsync(cmd: Uint8Array): Promise<Uint8Array> {
    this.#enterRunning();
    return this.#executeAsync(cmd);
  }

  /** TPMLIB_CancelCommand: only effective while an async command runs (→ 0x909). */
  cancel(): number {
    // A closed engine's copy may serve another TPM by now.
    if (this.#closed) return TPM_SUCCESS;
    return this.#lib.CancelCommand();
  }

  /** TPMLIB_VolatileAll_Store: the volatile state of the running TPM (~9 KB). */
  volatileAllStore(): StateResult {
    this.#enterRunning();
    return this.#buf.takeOut((p, l) => this.#lib.VolatileAll_Store(p, l));
  }

  /**
   * TPMLIB_SetState, only while stopped (running → 0x26 TPM_INVALID_POSTINIT). Set
   * PERMANENT before VOLATILE; a rejected blob clears all cached blobs; `null`
   * hides the stored blob of that type from the next MainInit.
   */
  setState(type: BlobType, data: Uint8Array | null): number {
    this.#enter();
    return this.#lib.SetState(LIBTPMS_STATE[type], data, data?.length ?? 0);
  }

  /** TPMLIB_GetState: marshalled state while running, else cached SetState blob or store. */
  getState(type: BlobType): StateResult {
    this.#enter();
    return this.#buf.takeOut((p, l) => this.#lib.GetState(LIBTPMS_STATE[type], p, l));
  }

  /** TPMLIB_ValidateState(types bitmask of TPMLIB_STATE_*); reads via the store, not the cache. */
  validateState(types: number): number {
    this.#enter();
    return this.#lib.ValidateState(types, 0);
  }

  /** TPMLIB_DecodeBlob(INITSTATE): base64 between -----BEGIN/END INITSTATE----- tags. */
  decodeBlob(text: string): StateResult {
    this.#enter();
    // size_t *result_len: 8 bytes at offset 8 of the out slot.
    return this.#buf.takeOut((p, l) => this.#lib.DecodeBlob(text, 0, p, l), true);
  }

  /** TPMLIB_GetInfo: JSON text, or undefined when libtpms returns NULL. */
  getInfo(flags: bigint): string | undefined {
    this.#enter();
    const p = this.#lib.GetInfo(Number(BigInt.asUintN(32, flags)));
    if (p === null || p === 0n) return undefined;
    try {
      return this.#lib.koffi.decode(p, 'char', -1) as string;
    } finally {
      this.#lib.free(p);
    }
  }

  /** TPMLIB_SetBufferSize (0 = query); clamps to [min, max] and returns the size in effect. */
  setBufferSize(wanted: number): BufferSizeInfo {
    this.#enter();
    const min = [0];
    const max = [0];
    const size = this.#lib.SetBufferSize(wanted >>> 0, min, max);
    return { rc: TPM_SUCCESS, size, min: min[0] ?? 0, max: max[0] ?? 0 };
  }

  /** TPMLIB_GetTPMProperty (TPMPROP_*); 0.9.2 TPM 2 answers only props 1–3. */
  getTpmProperty(prop: number): { rc: number; value: number } {
    this.#enter();
    const out = [0];
    const rc = this.#lib.GetTPMProperty(prop, out);
    return { rc, value: out[0] ?? 0 };
  }

  /** _TPM_Hash_Start. On TPM 2 none of the three check order or Startup. */
  hashStart(): number {
    this.#enterRunning();
    return this.#lib.Hash_Start();
  }

  hashData(data: Uint8Array): number {
    this.#enterRunning();
    return this.#lib.Hash_Data(data, data.length);
  }

  /** _TPM_Hash_End: TPM 2 extends PCR 17 and sets the established bit. */
  hashEnd(): number {
    this.#enterRunning();
    return this.#lib.Hash_End();
  }

  establishedGet(): { rc: number; bit: number } {
    this.#enterRunning();
    const out = [0];
    const rc = this.#lib.TpmEstablished_Get(out);
    return { rc, bit: out[0] ?? 0 };
  }

  /** Needs locality 3 or 4 (read through the callback), else 0x3d TPM_BAD_LOCALITY. */
  establishedReset(): number {
    this.#syncLocality(this.#enterRunning());
    return this.#lib.TpmEstablished_Reset();
  }

  /** TPMLIB_WasManufactured (libtpms >= 0.10); undefined on 0.9. */
  wasManufactured(): boolean | undefined {
    const fn = this.#lib.WasManufactured;
    if (!fn) return undefined;
    this.#enter();
    return fn();
  }

  /**
   * libtpms' own log: written by libtpms itself (write() on `fd`, also from the worker
   * thread), lines with fewer leading spaces than `level` (0 = none), each after
   * `prefix`; its failure-mode messages go to `fd` whatever the level. swtpm maps
   * `--log level=N` to libtpms level N-4. The TPM 2 code of libtpms 0.9 logs nothing
   * but those failure messages.
   */
  setDebug(fd: number, level: number, prefix?: string): number {
    this.#enter();
    this.#lib.SetDebugFD(fd);
    this.#lib.SetDebugLevel(level >>> 0);
    return this.#lib.SetDebugPrefix(prefix ?? null);
  }

  #assertIdle(): void {
    if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'the engine is closed');
    if (this.#idle !== undefined) {
      throw new EngineError('ENGINE_BUSY', 'a TPM command is running on the worker thread');
    }
  }

  /** Every libtpms-touching call but cancel() starts here. */
  #enter(): void {
    this.#assertIdle();
    this.lastCallbackError = undefined;
  }

  #enterRunning(): TpmVersion {
    this.#enter();
    const v = this.#tpmVersion;
    if (v === undefined) throw new EngineError('ENGINE_NOT_RUNNING', 'the TPM is not running');
    return v;
  }

  /**
   * A TPM 2 at locality 0 runs without libtpms' locality callback (libtpms then uses
   * 0): that saves one call from C into JavaScript per command. Set before every
   * libtpms call that reads the locality, never while a command runs on the worker.
   */
  #syncLocality(version: TpmVersion): void {
    const on = version === '1.2' || this.locality !== 0;
    if (on === this.#localityCallback) return;
    this.#lib.setLocalityCallback(on);
    this.#localityCallback = on;
  }

  #executeAsync(cmd: Uint8Array): Promise<Uint8Array> {
    const lib = this.#lib;
    const version = this.#tpmVersion as TpmVersion;
    this.#syncLocality(version);
    // The command must stay at a stable native address while the worker reads it.
    const p = this.#buf.command(cmd);
    const rsp = this.#buf.rsp;
    let settle!: (err: unknown, rsp?: Uint8Array) => void;
    const done = new Promise<Uint8Array>((resolve, reject) => {
      settle = (err, rsp) => (err ? reject(err) : resolve(rsp as Uint8Array));
    });
    this.#idle = done.then(
      () => undefined,
      () => undefined,
    );
    try {
      lib.Process.async(rsp, rsp + 8n, rsp + 12n, p, cmd.length, (err, rc) => {
        lib.free(p);
        this.#idle = undefined;
        if (err) return settle(err);
        this.lastProcessRc = rc;
        settle(undefined, this.#buf.response(version));
      });
    } catch (err) {
      lib.free(p);
      this.#idle = undefined;
      throw err;
    }
    return done;
  }
}
