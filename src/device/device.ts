import { diagChannel } from '../diagnostics-channels.js';
import { Engine } from '../engine/engine.js';
import { TPM2_CC, TPM_ORD, shutdown2, startup2, startup12 } from '../protocol/tpm/commands.js';
import {
  TPM2_CC_SHUTDOWN,
  TPM2_SU_CLEAR,
  TPM2_SU_STATE,
  TPM_CC_SET_LOCALITY,
  TPM_HEADER_SIZE,
  commandCode,
  errorResponse,
  responseCode,
} from '../protocol/tpm/header.js';
import { parseSendCommandPrefix, wrapPrefixedResponse } from '../protocol/tpm/prefix.js';
import {
  TPM_BAD_LOCALITY,
  TPM_BAD_PARAM_SIZE,
  TPM_FAIL,
  TPM_RC_FAILURE,
  TPM_RC_INITIALIZE,
  TPM_RC_INSUFFICIENT,
  TPM_RC_LOCALITY,
  TPM_SUCCESS,
} from '../protocol/tpm/results.js';
import { rejectedState, startFromStorage } from './start-state.js';
import { traceInternal } from './trace.js';
import type { DeviceOptions } from './types.js';

/** Published for every TPM command: { ordinal, rc, long }. */
export const tpmCommandChannel = diagChannel('tswtpm:tpm:command');

/** Number of 10 ms retries swtpm uses after it released the lock (savestate fetch). */
export const LOCK_RETRIES_AFTER_RELEASE = 300;

/**
 * THE state machine of one emulated TPM. Every front end (TCP, Unix, passed fd, CUSE)
 * calls into it; control commands go through `control()` (control.ts), TPM commands
 * through `tpmCommand()`.
 *
 * libtpms runs one call at a time. Short calls run synchronously and return plain
 * values; while a long command (RSA keygen) runs on a worker thread, `serialize()`
 * queues everything that touches libtpms and returns promises.
 */
export class Device {
  readonly engine: Engine;
  readonly opts: DeviceOptions;
  /** INIT succeeded (or the TPM was started at launch) and no STOP/SHUTDOWN since. */
  running = false;
  /** Ordinal of the last command libtpms processed; drives the automatic TPM2_Shutdown. */
  lastOrdinal: number | undefined;
  /** Retries the next storage lock attempt gets (raised after a savestate fetch). */
  lockRetries = 0;
  /**
   * Set by the front end: handles CMD_SET_DATAFD with the fd received with it, if any.
   * Returns a result code: TPM_IOERROR when a data channel exists (checked first, as
   * swtpm does), TPM_BAD_PARAMETER when no fd came.
   */
  attachDataFd: ((fd: number | undefined) => number) | undefined;
  /** Called after a CMD_SHUTDOWN reply was produced; the front end exits. */
  onShutdown: (() => void) | undefined;
  /** Last error thrown by a storage callback, for logs and CLI messages. */
  lastStorageError: unknown;
  /**
   * The cached permanent state was cleared (SET_STATEBLOB permanent, empty): libtpms
   * would crash on a volatile blob now, so one is refused until a permanent blob comes.
   */
  permanentCleared = false;
  /** Where the device reports errors a control reply can only give as a number. */
  onError: ((message: string) => void) | undefined;
  private tail: Promise<unknown> | undefined;
  /** The `--profile` still to apply; dropped after the first successful start. */
  private profile: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(opts: DeviceOptions) {
    this.opts = opts;
    this.profile = opts.profile;
    // Its own libtpms copy when other TPMs share the process (engine/pool.ts).
    this.engine = opts.engine ?? Engine.open();
    this.engine.setStore(opts.storage);
    this.engine.choose(opts.version);
  }

  get version() {
    return this.opts.version;
  }

  /** True while a TPM command runs off the event loop (or is queued behind one). */
  get busy(): boolean {
    return this.tail !== undefined;
  }

  /**
   * Runs `fn` when libtpms is free: at once (synchronously) when nothing is pending,
   * otherwise after everything queued before it.
   */
  serialize<T>(fn: () => T | Promise<T>): T | Promise<T> {
    if (this.tail === undefined) {
      const r = fn();
      if (r instanceof Promise) this.track(r);
      return r;
    }
    const p = this.tail.then(fn);
    this.track(p);
    return p;
  }

  private track(p: Promise<unknown>): void {
    const t: Promise<unknown> = p.then(
      () => this.settle(t),
      () => this.settle(t),
    );
    this.tail = t;
  }

  private settle(t: Promise<unknown>): void {
    if (this.tail === t) this.tail = undefined;
  }

  /**
   * Starts libtpms as INIT does: storage lock (unless an incoming migration defers
   * it), MainInit, optional deletion of the volatile state. Returns a result code.
   */
  startTpm(initFlags: number): number {
    const { opts } = this;
    this.lastStorageError = undefined;
    if (!opts.incomingMigration && !this.ensureLocked()) {
      this.report('Could not start the TPM');
      return TPM_FAIL;
    }
    if (!this.setProfile()) return TPM_FAIL;
    const rc = startFromStorage(this);
    if (rc !== TPM_SUCCESS) {
      this.lastStorageError ??= this.engine.lastCallbackError ?? rejectedState(this.opts);
      this.engine.stop();
      this.report(`Could not start the TPM (result 0x${rc.toString(16)})`);
      return rc;
    }
    if (this.profile !== undefined) {
      if (this.engine.wasManufactured() === false) {
        this.engine.stop();
        this.report('Error: Profile could not be applied to an existing TPM 2 instance.');
        return TPM_FAIL;
      }
      this.profile = undefined;
    }
    if (initFlags & 1) {
      try {
        opts.storage.delete('volatilestate');
      } catch (err) {
        this.lastStorageError = err;
        this.engine.stop();
        return TPM_FAIL;
      }
    }
    this.running = true;
    this.lastOrdinal = undefined;
    return TPM_SUCCESS;
  }

  /** TPMLIB_SetProfile before MainInit (libtpms 0.10+; the CLI checked it exists). */
  private setProfile(): boolean {
    const json = this.profile;
    if (json === undefined || this.opts.version !== '2.0') return true;
    const set = this.engine.setProfile;
    if (set === undefined) return true;
    this.engine.choose(this.opts.version);
    if (set(json) === TPM_SUCCESS) return true;
    this.report(`Error: Could not set profile for TPM2: '${json}'`);
    return false;
  }

  /** Reports `what` with the storage error behind it, if any. */
  report(what: string): void {
    const why = this.lastStorageError;
    const detail = why instanceof Error ? `: ${why.message}` : '';
    this.onError?.(`${what}${detail}`);
  }

  /** Terminates libtpms after the automatic TPM2_Shutdown (0.8+). */
  stopTpm(): void {
    if (this.running) this.autoShutdown();
    this.engine.stop();
    this.running = false;
  }

  /**
   * Sends the `--flags startup-*` command. Returns false when libtpms could not
   * process it (swtpm then exits); the TPM's own result is not checked, as in swtpm.
   */
  sendStartup(): boolean {
    const { startup } = this.opts.flags;
    if (startup === 'none') return true;
    const type =
      this.opts.version === '2.0'
        ? startup === 'clear'
          ? 0
          : 1
        : startup === 'clear'
          ? 1
          : startup === 'state'
            ? 2
            : 3;
    const cmd = this.opts.version === '2.0' ? startup2(type) : startup12(type);
    traceInternal('SWTPM_IO_Read', cmd, this);
    const rsp = this.engine.execute(cmd);
    if (rsp instanceof Promise) return true;
    traceInternal('SWTPM_IO_Write', rsp, this);
    this.lastOrdinal = commandCode(cmd);
    return rsp.length >= TPM_HEADER_SIZE;
  }

  /**
   * TPM2_Shutdown(SU_STATE), then SU_CLEAR if that failed other than with
   * TPM_RC_INITIALIZE, unless the last command was already a TPM2_Shutdown.
   */
  autoShutdown(): void {
    const { opts } = this;
    if (opts.version !== '2.0' || opts.flags.disableAutoShutdown || !this.running) return;
    if (this.lastOrdinal === TPM2_CC_SHUTDOWN) return;
    // After a savestate fetch the lock was handed to a migration destination: the state
    // on disk is no longer ours to write.
    if (opts.lockStorage && !opts.storage.backend.locked) return;
    const run = (su: number) => {
      const cmd = shutdown2(su);
      traceInternal('SWTPM_IO_Read', cmd, this);
      const r = this.engine.execute(cmd);
      this.reportStorageFailure(TPM2_CC_SHUTDOWN);
      if (r instanceof Promise) return undefined;
      traceInternal('SWTPM_IO_Write', r, this);
      return responseCode(r);
    };
    const rc = run(TPM2_SU_STATE);
    if (rc !== undefined && rc !== TPM_SUCCESS && rc !== TPM_RC_INITIALIZE) run(TPM2_SU_CLEAR);
    this.lastOrdinal = TPM2_CC_SHUTDOWN;
  }

  /** Takes the storage lock if this backend wants one. False when another holder has it. */
  ensureLocked(): boolean {
    const { backend } = this.opts.storage;
    if (!this.opts.lockStorage || backend.locked) return true;
    let ok: boolean;
    try {
      ok = backend.lock(this.lockRetries);
    } catch (err) {
      // The lock file cannot be opened (e.g. no state directory): swtpm answers
      // INIT with TPM_FAIL and keeps serving.
      this.lastStorageError = err;
      return false;
    }
    if (ok) this.lockRetries = 0;
    else {
      this.lastStorageError = new Error(
        `Could not lock the TPM state at ${backend.uri}: another process holds the lock`,
      );
    }
    return ok;
  }

  /**
   * One TPM command from a data channel, as read (no length framing: one read is one
   * command, as in swtpm). `allowPrefix` enables the TCG send-command prefix (socket
   * and chardev front ends, TPM 2 only). Returns the bytes to send back.
   */
  tpmCommand(buf: Uint8Array, allowPrefix: boolean): Uint8Array | Promise<Uint8Array> {
    let cmd = buf;
    let prefixed = false;
    if (allowPrefix && this.opts.version === '2.0') {
      const p = parseSendCommandPrefix(buf);
      if (p !== undefined) {
        // swtpm takes the prefix's locality as is: sticky, not range checked.
        this.engine.locality = p.locality;
        cmd = p.command;
        prefixed = true;
      }
    }
    const r = this.serialize(() => this.runCommand(cmd));
    if (!prefixed) return r;
    return r instanceof Promise ? r.then(wrapPrefixedResponse) : wrapPrefixedResponse(r);
  }

  private runCommand(cmd: Uint8Array): Uint8Array | Promise<Uint8Array> {
    const v = this.opts.version;
    if (!this.running) return errorResponse(v, v === '2.0' ? TPM_RC_FAILURE : TPM_FAIL);
    if (cmd.length < TPM_HEADER_SIZE) {
      return errorResponse(v, v === '2.0' ? TPM_RC_INSUFFICIENT : TPM_BAD_PARAM_SIZE);
    }
    const ordinal = commandCode(cmd)!;
    if (ordinal === TPM_CC_SET_LOCALITY) return this.vendorSetLocality(cmd);
    if (!this.ensureLocked()) return errorResponse(v, v === '2.0' ? TPM_RC_FAILURE : TPM_FAIL);
    this.lastOrdinal = ordinal;
    const r = this.engine.execute(cmd);
    if (r instanceof Promise) {
      return r.then((rsp) => {
        this.reportStorageFailure(ordinal);
        if (tpmCommandChannel.hasSubscribers) {
          tpmCommandChannel.publish({ ordinal, rc: responseCode(rsp), long: true });
        }
        return rsp;
      });
    }
    this.reportStorageFailure(ordinal);
    if (tpmCommandChannel.hasSubscribers) {
      tpmCommandChannel.publish({ ordinal, rc: responseCode(r), long: false });
    }
    return r;
  }

  /**
   * libtpms only sees TPM_FAIL from a failed NV write (and enters failure mode): the
   * reason (file, operation, errno) is reported here, once per failed write.
   */
  private reportStorageFailure(ordinal: number): void {
    const err = this.engine.lastCallbackError;
    if (err === undefined) return;
    this.lastStorageError = err;
    this.report(`${commandName(this.opts.version, ordinal)} could not save the TPM state`);
  }

  /** Vendor ordinal 0x20001000 (§3.4), answered by swtpm itself. */
  private vendorSetLocality(cmd: Uint8Array): Uint8Array {
    const v = this.opts.version;
    const tpm2 = v === '2.0';
    if (cmd.length < 11) return errorResponse(v, tpm2 ? TPM_RC_INSUFFICIENT : TPM_BAD_PARAM_SIZE);
    if (!this.opts.locality.allowSetLocality) {
      return errorResponse(v, tpm2 ? TPM_RC_FAILURE : TPM_FAIL);
    }
    const loc = cmd[10]!;
    if (loc >= 5 || (loc === 4 && this.opts.locality.rejectLocality4)) {
      return errorResponse(v, tpm2 ? TPM_RC_LOCALITY : TPM_BAD_LOCALITY);
    }
    this.engine.locality = loc;
    return errorResponse(v, TPM_SUCCESS);
  }

  /**
   * Ends the TPM for process exit: automatic TPM2_Shutdown, Terminate, unlock, and the
   * engine's libtpms copy goes back for another TPM. Later calls get the same promise.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    if (this.engine.busy) this.engine.cancel();
    while (this.tail !== undefined) await this.tail;
    this.stopTpm();
    this.opts.storage.backend.close();
    this.engine.close();
  }
}

/** "TPM2_NV_Write (0x137)" for the commands we have names for, else the hex code. */
function commandName(version: DeviceOptions['version'], ordinal: number): string {
  const names: Record<string, number> = version === '2.0' ? TPM2_CC : TPM_ORD;
  const prefix = version === '2.0' ? 'TPM2_' : 'TPM_';
  const name = Object.keys(names).find((k) => names[k] === ordinal);
  const hex = `0x${ordinal.toString(16)}`;
  return name === undefined ? `TPM command ${hex}` : `${prefix}${name} (${hex})`;
}
