import { closeSync, readFileSync, unlinkSync } from 'node:fs';
import type { DeviceStorage } from '../../device/types.js';
import type { StateName, TpmVersion } from '../../engine/types.js';
import { PTM_STATE_FLAG_ENCRYPTED } from '../../protocol/ctrl/index.js';
import { DEFAULT_ENCRYPTION_MODE, encodeMigrationBlob } from '../../protocol/state/index.js';
import {
  deriveKeyFromPassword,
  parseEncryptionMode,
  parseKeyDerivation,
  parseKeyFile,
  parseKeyFormat,
} from '../../protocol/state/key.js';
import { StateStore } from '../../storage/state-store.js';
import type { StateBackend } from '../../storage/types.js';
import { formatPrintStates, openBackend, parseTpmstate } from '../../storage/uri.js';
import { CliError } from '../common/subopts.js';
import type { Config } from './args.js';

type KeyOpts = Record<string, string | number | boolean>;

/**
 * Reads `--key` / `--migration-key`: a key file (hex or binary) or a password file
 * run through the KDF; fds are read to the end and closed, `remove` unlinks the file.
 */
export function loadKey(what: string, o: KeyOpts | undefined): Uint8Array | undefined {
  if (o === undefined) return undefined;
  try {
    const mode = typeof o.mode === 'string' ? parseEncryptionMode(o.mode) : DEFAULT_ENCRYPTION_MODE;
    const src = o.file ?? o.fd ?? o.pwdfile ?? o.pwdfd;
    if (src === undefined) throw new Error(`Missing file=, fd=, pwdfile= or pwdfd= in ${what}`);
    const content = readFileSync(typeof src === 'number' ? src : String(src));
    if (typeof src === 'number') closeSync(src);
    if (o.remove === true && typeof src === 'string') unlinkSync(src);
    if (o.pwdfile !== undefined || o.pwdfd !== undefined) {
      const kdf = typeof o.kdf === 'string' ? parseKeyDerivation(o.kdf) : 'pbkdf2';
      return deriveKeyFromPassword(content, kdf, mode);
    }
    const format = typeof o.format === 'string' ? parseKeyFormat(o.format) : 'hex';
    return parseKeyFile(content, format, mode);
  } catch (err) {
    throw new CliError(`Error parsing ${what} options: ${(err as Error).message}`);
  }
}

export type ServerStorage = DeviceStorage & { readonly lockWanted: boolean };

/** Opens the state backend of `--tpmstate` (or TPM_PATH) with the keys given. */
export function openStorage(cfg: Config, version: TpmVersion): ServerStorage {
  let backend: StateBackend;
  let lockWanted: boolean;
  try {
    const bc = cfg.backend ?? parseTpmstate(cfg.tpmstate);
    lockWanted = bc.lock;
    backend = openBackend(bc);
  } catch (err) {
    throw new CliError(`Error: ${(err as Error).message}`);
  }
  const fileKey = loadKey('key', cfg.key);
  const migrationKey = loadKey('migration-key', cfg.migrationKey);
  const opts: { fileKey?: Uint8Array; migrationKey?: Uint8Array } = {};
  if (fileKey !== undefined) opts.fileKey = fileKey;
  if (migrationKey !== undefined) opts.migrationKey = migrationKey;
  return deviceStorage(new StateStore(backend, version, opts), lockWanted, opts);
}

/** Adapts a StateStore to what the device needs for GET/SET_STATEBLOB. */
export function deviceStorage(
  store: StateStore,
  lockWanted: boolean,
  keys: { fileKey?: Uint8Array; migrationKey?: Uint8Array },
): ServerStorage {
  return {
    lockWanted,
    backend: store.backend,
    hasFileKey: store.hasFileKey,
    hasMigrationKey: store.hasMigrationKey,
    load: (name: StateName) => store.load(name),
    store: (name: StateName, data: Uint8Array) => store.store(name, data),
    delete: (name: StateName) => store.delete(name),
    getMigrationBlob(name, decrypted, plain) {
      if (plain === undefined) return store.getMigrationBlob(name, { decrypted });
      return encodeMigrationBlob(plain, { decrypted, ...keys });
    },
    decodeIncomingBlob(name, stateFlags, blob) {
      return store.decodeIncomingBlob(name, blob, {
        encrypted: (stateFlags & PTM_STATE_FLAG_ENCRYPTED) !== 0,
      });
    },
  };
}

/** `--print-states` text (swtpm's exact JSON spacing). */
export function printStates(backend: StateBackend, version: TpmVersion): string {
  return formatPrintStates(new StateStore(backend, version).listStates());
}
