import { crashHookFromEnv } from './crash-hook.js';
import { DirBackend } from './dir.js';
import { StorageError } from './errors.js';
import { LinearFileBackend } from './file.js';
import type { StateInfo } from './state-store.js';
import type { StateBackend } from './types.js';

/** Where and how state is stored, from `--tpmstate` (or `TPM_PATH`). */
export type BackendConfig =
  | {
      readonly kind: 'dir';
      readonly path: string;
      readonly mode?: number;
      readonly lock: boolean;
      readonly backup: boolean;
      readonly fsync: boolean;
    }
  | {
      readonly kind: 'file';
      readonly path: string;
      readonly mode?: number;
      readonly lock: boolean;
    };

const KNOWN = new Set(['dir', 'backend-uri', 'mode', 'lock', 'backup', 'fsync']);

function bad(message: string): StorageError {
  return new StorageError('BAD_OPTIONS', message);
}

/** swtpm's sub-option booleans: `true`/`1` (any case) are true, a bare name is true. */
function parseBool(v: string): boolean {
  const l = v.toLowerCase();
  return l === 'true' || l === '1';
}

/**
 * Parses a `--tpmstate` value (`dir=D`, `backend-uri=dir://D`, `backend-uri=file://F`,
 * plus `mode=` (octal ≤ 0777), `lock`, `backup`, `fsync`). Without `--tpmstate`,
 * `TPM_PATH` from `env` is used as `dir://$TPM_PATH`.
 *
 * @example parseTpmstate('backend-uri=file:///dev/sdb,lock') // { kind: 'file', path: '/dev/sdb', lock: true }
 */
export function parseTpmstate(
  value: string | undefined,
  env: Record<string, string | undefined> = process.env,
): BackendConfig {
  if (value === undefined) {
    const p = env.TPM_PATH;
    if (p === undefined || p === '') {
      throw new StorageError(
        'NO_STATE_PATH',
        'no TPM state location: use --tpmstate or set the TPM_PATH environment variable',
      );
    }
    return { kind: 'dir', path: p, lock: true, backup: false, fsync: false };
  }
  const opts = new Map<string, string>();
  for (const token of value.split(',')) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    const k = eq < 0 ? token : token.slice(0, eq);
    if (!KNOWN.has(k)) throw bad(`Error parsing tpmstate options: Unknown option '${k}'`);
    opts.set(k, eq < 0 ? 'true' : token.slice(eq + 1));
  }
  let mode: number | undefined;
  const m = opts.get('mode');
  if (m !== undefined) {
    mode = /^[0-7]+$/.test(m) ? Number.parseInt(m, 8) : Number.NaN;
    if (!(mode <= 0o777)) throw bad(`Invalid mode '${m}' for tpmstate: must be octal ≤ 0777`);
  }
  const flag = (k: string): boolean | undefined => {
    const v = opts.get(k);
    return v === undefined ? undefined : parseBool(v);
  };
  const { kind, path } = locate(opts.get('dir'), opts.get('backend-uri'));
  const withMode = mode === undefined ? {} : { mode };
  if (kind === 'file') {
    if (flag('backup') === true || flag('fsync') === true) {
      throw bad(`The backup and fsync options are not supported by the file backend (${path})`);
    }
    return { kind, path, lock: flag('lock') ?? false, ...withMode };
  }
  return {
    kind,
    path,
    lock: flag('lock') ?? true,
    backup: flag('backup') ?? false,
    fsync: flag('fsync') ?? false,
    ...withMode,
  };
}

function locate(
  dir: string | undefined,
  uri: string | undefined,
): { kind: 'dir' | 'file'; path: string } {
  if (dir !== undefined && uri !== undefined) {
    throw bad('Only one of tpmstate dir= and backend-uri= may be given');
  }
  if (dir !== undefined) {
    if (dir === '') throw bad('The tpmstate dir= option needs a directory');
    return { kind: 'dir', path: dir };
  }
  if (uri === undefined) throw bad('The tpmstate option requires dir= or backend-uri=');
  for (const [prefix, kind] of [
    ['dir://', 'dir'],
    ['file://', 'file'],
  ] as const) {
    if (uri.startsWith(prefix) && uri.length > prefix.length) {
      return { kind, path: uri.slice(prefix.length) };
    }
  }
  throw bad(`Unsupported tpmstate backend URI '${uri}' (use dir://PATH or file://PATH)`);
}

/**
 * Creates the backend a config describes (nothing is opened or created yet).
 *
 * @example const backend = openBackend(parseTpmstate('dir=/var/lib/tpm'));
 */
export function openBackend(cfg: BackendConfig): StateBackend {
  if (cfg.kind === 'file')
    return new LinearFileBackend(cfg.path, { lock: cfg.lock, mode: cfg.mode });
  return new DirBackend(cfg.path, {
    mode: cfg.mode,
    lock: cfg.lock,
    backup: cfg.backup,
    fsync: cfg.fsync,
    onWriteStep: crashHookFromEnv(),
  });
}

/**
 * swtpm's `--print-states` text (no trailing newline), e.g.
 * `{ "type": "swtpm", "states": [ {"name": "permall", "size": 1315} ] }`.
 *
 * @example process.stdout.write(formatPrintStates(store.listStates()))
 */
export function formatPrintStates(states: readonly StateInfo[]): string {
  if (states.length === 0) return '{ "type": "swtpm", "states": [] }';
  const items = states.map((s) => `{"name": "${s.name}", "size": ${s.size}}`).join(', ');
  return `{ "type": "swtpm", "states": [ ${items} ] }`;
}
