import type { NvStore, StateName, TpmVersion } from '../engine/types.js';
import {
  type MigrationBlob,
  StateBlobError,
  TPM_BAD_PARAMETER,
  checkBlobHeader,
  decodeMigrationBlob,
  decodeStateFile,
  encodeMigrationBlob,
  encodeStateFile,
  loadDataResult,
} from '../protocol/state/index.js';
import { StorageError } from './errors.js';
import { STATE_NAMES, stateFileName } from './names.js';
import type { StateBackend } from './types.js';

export interface StateStoreOptions {
  /** `--key`: state files are encrypted with it. */
  readonly fileKey?: Uint8Array | undefined;
  /** `--migration-key`: GET_STATEBLOB payloads are encrypted with it. */
  readonly migrationKey?: Uint8Array | undefined;
}

/** A stored blob and its size on disk, as `--print-states` lists them. */
export interface StateInfo {
  readonly name: StateName;
  readonly size: number;
}

/**
 * libtpms' NV store on top of a backend: adds/removes swtpm's blob header, TLVs and
 * file-key encryption, and builds/unwraps GET/SET_STATEBLOB payloads.
 *
 * @example
 * const store = new StateStore(new DirBackend(dir), '2.0', { fileKey });
 * const permall = store.load('permall'); // plain libtpms blob or undefined
 */
export class StateStore implements NvStore {
  readonly backend: StateBackend;
  readonly version: TpmVersion;
  readonly #fileKey: Uint8Array | undefined;
  readonly #migrationKey: Uint8Array | undefined;
  /**
   * The plain blob last read or written, per name, so GET_STATEBLOB need not re-read
   * and re-decrypt the file it just wrote. Trusted only while the backend reports
   * `locked` (we hold the lock, or locking is disabled and concurrent writers are
   * unsupported anyway); dropped whenever the lock is gone.
   */
  readonly #cache = new Map<StateName, Uint8Array>();

  constructor(backend: StateBackend, version: TpmVersion, opts: StateStoreOptions = {}) {
    this.backend = backend;
    this.version = version;
    this.#fileKey = opts.fileKey;
    this.#migrationKey = opts.migrationKey;
  }

  /** CMD_GET_CONFIG bit 0. */
  get hasFileKey(): boolean {
    return this.#fileKey !== undefined;
  }

  /** CMD_GET_CONFIG bit 1. */
  get hasMigrationKey(): boolean {
    return this.#migrationKey !== undefined;
  }

  /** "tpm2-00.permall in dir:///var/lib/tpm", for messages. */
  describe(name: StateName): string {
    return `${stateFileName(this.version, name)} in ${this.backend.uri}`;
  }

  /**
   * The plain libtpms blob, or undefined when it is not stored. A stored blob that
   * cannot be decoded throws StorageError 'CORRUPT_STATE' naming the file, with
   * `result` = what swtpm's load callback hands libtpms (see loadDataResult) and
   * `cause` = the StateBlobError.
   */
  load(name: StateName): Uint8Array | undefined {
    this.#cache.delete(name);
    const bytes = this.backend.read(this.version, name);
    if (bytes === undefined) return undefined;
    try {
      const plain = decodeStateFile(bytes, this.#fileKey).plain;
      this.#cache.set(name, plain);
      return plain;
    } catch (e) {
      if (!(e instanceof StateBlobError)) throw e;
      throw new StorageError(
        'CORRUPT_STATE',
        `cannot decode ${this.describe(name)}: ${e.message}`,
        {
          result: loadDataResult(e),
          cause: e,
        },
      );
    }
  }

  store(name: StateName, data: Uint8Array): void {
    this.#cache.delete(name);
    this.backend.write(this.version, name, encodeStateFile(data, this.#fileKey));
    this.#cache.set(name, data);
  }

  delete(name: StateName): boolean {
    this.#cache.delete(name);
    return this.backend.delete(this.version, name);
  }

  /** The stored plain blob: from the cache while locked, else from the backend. */
  #current(name: StateName): Uint8Array | undefined {
    if (!this.backend.locked) this.#cache.clear();
    return this.#cache.get(name) ?? this.load(name);
  }

  /**
   * GET_STATEBLOB payload for a stored blob (undefined = not stored → TPM_RETRY).
   * `decrypted` = PTM_STATE_FLAG_DECRYPTED; the result's `encrypted` becomes
   * PTM_STATE_FLAG_ENCRYPTED in the response.
   */
  getMigrationBlob(name: StateName, opts: { decrypted: boolean }): MigrationBlob | undefined {
    const plain = this.#current(name);
    if (plain === undefined) return undefined;
    return encodeMigrationBlob(plain, {
      decrypted: opts.decrypted,
      fileKey: this.#fileKey,
      migrationKey: this.#migrationKey,
    });
  }

  /**
   * Unwraps a SET_STATEBLOB payload into the plain blob for TPMLIB_SetState (empty =
   * clear that state). `name` undefined = unknown blob type: TPM_BAD_PARAMETER, after
   * the header checks as in swtpm. `encrypted` = PTM_STATE_FLAG_ENCRYPTED. Throws
   * StateBlobError whose `result` is the response code.
   */
  decodeIncomingBlob(
    name: StateName | undefined,
    blob: Uint8Array,
    opts: { encrypted: boolean },
  ): Uint8Array {
    if (blob.length > 0) checkBlobHeader(blob);
    if (name === undefined) {
      throw new StateBlobError('UNKNOWN_TYPE', TPM_BAD_PARAMETER, 'unknown state blob type');
    }
    return decodeMigrationBlob(blob, {
      stateEncrypted: opts.encrypted,
      fileKey: this.#fileKey,
      migrationKey: this.#migrationKey,
    });
  }

  /** Stored blobs and their sizes on disk (for `--print-states`). */
  listStates(): StateInfo[] {
    const out: StateInfo[] = [];
    for (const name of STATE_NAMES) {
      const bytes = this.backend.read(this.version, name);
      if (bytes !== undefined) out.push({ name, size: bytes.length });
    }
    return out;
  }
}
