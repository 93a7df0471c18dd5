import type { StateName } from '../engine/types.js';
import type { CtrlName, CtrlRequest, CtrlResponse } from '../protocol/ctrl/index.js';
import {
  PTM_BLOB_TYPE_PERMANENT,
  PTM_BLOB_TYPE_SAVESTATE,
  PTM_BLOB_TYPE_VOLATILE,
  PTM_CONFIG_FLAG_FILE_KEY,
  PTM_CONFIG_FLAG_MIGRATION_KEY,
  PTM_STATE_FLAG_DECRYPTED,
  PTM_STATE_FLAG_ENCRYPTED,
  fail,
  ok,
} from '../protocol/ctrl/index.js';
import {
  TPM_BAD_LOCALITY,
  TPM_BAD_ORDINAL,
  TPM_BAD_PARAMETER,
  TPM_FAIL,
  TPM_IOERROR,
  TPM_RETRY,
  TPM_SIZE,
  TPM_SUCCESS,
} from '../protocol/tpm/results.js';
import { type Device, LOCK_RETRIES_AFTER_RELEASE } from './device.js';

/** swtpm master refuses SET_STATEBLOB payloads above 512 KiB. */
export const MAX_STATE_BLOB = 524288;

const BLOB_NAMES: Readonly<Record<number, StateName>> = {
  [PTM_BLOB_TYPE_PERMANENT]: 'permall',
  [PTM_BLOB_TYPE_VOLATILE]: 'volatilestate',
  [PTM_BLOB_TYPE_SAVESTATE]: 'savestate',
};

/** Commands answered at once even while a long TPM command runs (CUSE semantics). */
const IMMEDIATE: ReadonlySet<CtrlName> = new Set([
  'GET_CAPABILITY',
  'SET_LOCALITY',
  'GET_CONFIG',
  'CANCEL_TPM_CMD',
]);

/** Commands whose "TPM must be running" check comes before the body-length check. */
const NEEDS_RUNNING: ReadonlySet<CtrlName> = new Set([
  'GET_TPMESTABLISHED',
  'HASH_START',
  'HASH_DATA',
  'HASH_END',
  'CANCEL_TPM_CMD',
  'STORE_VOLATILE',
  'RESET_TPMESTABLISHED',
  'GET_STATEBLOB',
]);

/**
 * The result of the state checks swtpm makes before it looks at the body, so a
 * malformed request to a TPM in the wrong state gets the same code as from swtpm.
 */
export function stateCheck(dev: Device, name: CtrlName): number {
  if (NEEDS_RUNNING.has(name) && !dev.running) return TPM_BAD_ORDINAL;
  if (name === 'SET_STATEBLOB' && dev.running) return TPM_BAD_ORDINAL;
  return TPM_SUCCESS;
}

type Handler<C extends CtrlRequest['cmd']> = (
  dev: Device,
  req: Extract<CtrlRequest, { cmd: C }>,
) => CtrlResponse;

type Handlers = { [C in CtrlRequest['cmd']]: Handler<C> };

const handlers: Handlers = {
  GET_CAPABILITY: (dev) => ({ result: 0, caps: BigInt(dev.opts.caps) }),
  INIT: (dev, req) => {
    dev.stopTpm();
    return fail(dev.startTpm(req.initFlags));
  },
  SHUTDOWN: (dev) => {
    dev.stopTpm();
    const cb = dev.onShutdown;
    if (cb !== undefined) setImmediate(cb);
    return ok;
  },
  GET_TPMESTABLISHED: (dev) => {
    const { rc, bit } = dev.engine.establishedGet();
    return rc === TPM_SUCCESS ? { result: 0, bit } : fail(rc);
  },
  SET_LOCALITY: (dev, req) => {
    if (req.locality > 4 || (req.locality === 4 && dev.opts.locality.rejectLocality4)) {
      return fail(TPM_BAD_LOCALITY);
    }
    dev.engine.locality = req.locality;
    return ok;
  },
  HASH_START: (dev) => fail(dev.engine.hashStart()),
  HASH_DATA: (dev, req) => fail(dev.engine.hashData(req.data)),
  HASH_END: (dev) => fail(dev.engine.hashEnd()),
  CANCEL_TPM_CMD: (dev) => fail(dev.engine.cancel()),
  STORE_VOLATILE: (dev) => {
    if (!dev.ensureLocked()) return fail(TPM_FAIL);
    const { rc, data } = dev.engine.volatileAllStore();
    if (rc !== TPM_SUCCESS) return fail(rc);
    try {
      dev.opts.storage.store('volatilestate', data);
      return ok;
    } catch (err) {
      dev.lastStorageError = err;
      dev.report('CMD_STORE_VOLATILE failed');
      return fail(TPM_FAIL);
    }
  },
  RESET_TPMESTABLISHED: (dev, req) => {
    // reject-locality-4 is not applied here (swtpm).
    if (req.locality > 4) return fail(TPM_BAD_LOCALITY);
    const saved = dev.engine.locality;
    dev.engine.locality = req.locality;
    try {
      return fail(dev.engine.establishedReset());
    } finally {
      dev.engine.locality = saved;
    }
  },
  GET_STATEBLOB: getStateBlob,
  SET_STATEBLOB: setStateBlob,
  STOP: (dev) => {
    dev.stopTpm();
    return ok;
  },
  GET_CONFIG: (dev) => ({
    result: 0,
    flags:
      (dev.opts.storage.hasFileKey ? PTM_CONFIG_FLAG_FILE_KEY : 0) |
      (dev.opts.storage.hasMigrationKey ? PTM_CONFIG_FLAG_MIGRATION_KEY : 0),
  }),
  SET_DATAFD: (dev, req) => {
    if (dev.attachDataFd === undefined) return fail(TPM_BAD_ORDINAL);
    // The front end answers 0x1f when it has a data channel, before looking for an fd.
    return fail(dev.attachDataFd(req.fd));
  },
  SET_BUFFERSIZE: (dev, req) => {
    if (req.bufferSize !== 0 && dev.running) return fail(TPM_BAD_ORDINAL);
    const r = dev.engine.setBufferSize(req.bufferSize);
    if (r.rc !== TPM_SUCCESS) return fail(r.rc);
    return { result: 0, bufferSize: r.size, minSize: r.min, maxSize: r.max };
  },
  GET_INFO: (dev, req) => {
    const text = dev.engine.getInfo(req.flags);
    if (text === undefined) return fail(TPM_SIZE);
    const bytes = Buffer.from(`${text}\0`, 'utf8');
    if (req.offset >= bytes.length - 1) return fail(TPM_BAD_PARAMETER);
    const chunk = bytes.subarray(req.offset, req.offset + 3072);
    return { result: 0, totLength: bytes.length, length: chunk.length, buffer: chunk };
  },
  LOCK_STORAGE: (dev, req) => {
    dev.lockRetries = req.retries;
    return fail(dev.ensureLocked() ? TPM_SUCCESS : TPM_FAIL);
  },
};

function getStateBlob(
  dev: Device,
  req: Extract<CtrlRequest, { cmd: 'GET_STATEBLOB' }>,
): CtrlResponse {
  const header = (result: number, stateFlags = 0, blob?: Uint8Array): CtrlResponse => {
    const data = blob === undefined ? new Uint8Array(0) : blob.subarray(req.offset);
    return { result, stateFlags, totLength: data.length, length: data.length, data };
  };
  const name = BLOB_NAMES[req.type];
  if (name === undefined) return header(TPM_FAIL);
  let plain: Uint8Array | undefined;
  if (name === 'volatilestate') {
    // Taken from the running TPM directly; swtpm writes the file and reads it back.
    const r = dev.engine.volatileAllStore();
    if (r.rc !== TPM_SUCCESS) return header(r.rc);
    plain = r.data;
  }
  try {
    const decrypted = (req.stateFlags & PTM_STATE_FLAG_DECRYPTED) !== 0;
    const got = dev.opts.storage.getMigrationBlob(name, decrypted, plain);
    if (got === undefined) return header(TPM_RETRY);
    return header(TPM_SUCCESS, got.encrypted ? PTM_STATE_FLAG_ENCRYPTED : 0, got.blob);
  } catch (err) {
    dev.lastStorageError = err;
    return header(resultOf(err));
  } finally {
    if (name === 'volatilestate') {
      // swtpm ends a volatile fetch by deleting tpm2-00.volatilestate (also one left by
      // STORE_VOLATILE), so the next INIT starts from the permanent state alone.
      try {
        dev.opts.storage.delete('volatilestate');
      } catch (err) {
        dev.lastStorageError = err;
      }
    }
    if (name === 'savestate') {
      // swtpm 0.8+ releases the lock after a savestate fetch, whatever the result:
      // the migration destination may now take it. The next use retries for 3 s.
      dev.opts.storage.backend.unlock();
      dev.lockRetries = LOCK_RETRIES_AFTER_RELEASE;
    }
  }
}

function setStateBlob(
  dev: Device,
  req: Extract<CtrlRequest, { cmd: 'SET_STATEBLOB' }>,
): CtrlResponse {
  if (!dev.ensureLocked()) return fail(TPM_IOERROR);
  if (req.length > MAX_STATE_BLOB) return fail(TPM_FAIL);
  if (req.data.length !== req.length) return fail(TPM_BAD_PARAMETER);
  const name = BLOB_NAMES[req.type];
  const type = req.type as 1 | 2 | 3;
  if (req.length === 0) {
    if (name === undefined) return fail(TPM_BAD_PARAMETER);
    const rc = dev.engine.setState(type, null);
    if (type === PTM_BLOB_TYPE_PERMANENT && rc === TPM_SUCCESS) dev.permanentCleared = true;
    return fail(rc);
  }
  // libtpms 0.9.2 dereferences NULL in SetState(VOLATILE, data) after
  // SetState(PERMANENT, NULL); swtpm 0.7.1 segfaults there (docs/compat.md).
  if (type === PTM_BLOB_TYPE_VOLATILE && dev.permanentCleared) return fail(TPM_FAIL);
  let plain: Uint8Array;
  try {
    plain = dev.opts.storage.decodeIncomingBlob(name, req.stateFlags, req.data);
  } catch (err) {
    dev.lastStorageError = err;
    return fail(resultOf(err));
  }
  if (type === PTM_BLOB_TYPE_PERMANENT) dev.permanentCleared = plain.length === 0;
  return fail(dev.engine.setState(type, plain.length === 0 ? null : plain));
}

function resultOf(err: unknown): number {
  const r = (err as { result?: unknown } | null)?.result;
  return typeof r === 'number' ? r : TPM_FAIL;
}

/**
 * Runs one control command. Returns synchronously unless it has to wait for a long
 * TPM command; GET_CAPABILITY, SET_LOCALITY, GET_CONFIG and CANCEL_TPM_CMD never wait.
 */
export function control(dev: Device, req: CtrlRequest): CtrlResponse | Promise<CtrlResponse> {
  const handler = handlers[req.cmd] as (d: Device, r: CtrlRequest) => CtrlResponse;
  const run = () => {
    const pre = stateCheck(dev, req.cmd);
    if (pre !== TPM_SUCCESS) return fail(pre);
    try {
      return handler(dev, req);
    } catch (err) {
      // A bug or an unexpected native error must not take the channel down.
      dev.lastStorageError = err;
      dev.report(`CMD_${req.cmd} failed`);
      return fail(TPM_FAIL);
    }
  };
  if (IMMEDIATE.has(req.cmd)) return run();
  return dev.serialize(run);
}
