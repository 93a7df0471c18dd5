import { randomInt } from 'node:crypto';
/**
 * The local CA directory of swtpm_localca (provisioning.md §4.2, §4.4-§4.6): reading
 * swtpm-localca.conf, creating the directories, the lock file, the CA itself when it is
 * missing, and allocating serial numbers — the same files, modes and locking, so a CA made by
 * Debian's swtpm_localca works here and the reverse.
 */
import { constants, accessSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { createCa } from './ca-create.js';
import { configLines, configValue } from './config.js';
import { errorText, lockFile } from './libc.js';

/** A message to show the user: the exact swtpm_localca text, without a newline. */
export class LocalCaError extends Error {
  readonly code = 'LOCALCA' as const;
}

/** Receives swtpm_localca's informational lines. */
export type InfoLog = (line: string) => void;

export const LOCKFILE_NAME = '.lock.swtpm-localca';

/** swtpm-localca.conf after §4.4 steps 2-5. */
export interface LocalCaConfig {
  readonly statedir: string;
  readonly signingkey: string;
  readonly signingkeyPassword?: string;
  readonly parentkeyPassword?: string;
  readonly issuercert: string;
  readonly certserial: string;
}

export function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? '');
  }
}

const can = (path: string, mode: number) => {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
};

/** mkdir -p with 0770 & ~umask, logging it as swtpm_localca does. */
function makeDir(dir: string, purpose: string, log: InfoLog): void {
  if (existsSync(dir)) return;
  log(`Creating swtpm-localca dir '${dir}'.`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o770 });
  } catch (e) {
    throw new LocalCaError(`Could not create directory for '${purpose}': ${errorText(e)}`);
  }
}

/** Reads the config file (§4.2) and prepares the directories and lock file (§4.4 steps 2-5). */
export function openLocalCa(file: string, env: NodeJS.ProcessEnv, log: InfoLog): LocalCaConfig {
  const user = currentUser();
  let text: string;
  try {
    accessSync(file, constants.R_OK);
    text = readFileSync(file, 'utf8');
  } catch {
    throw new LocalCaError(`Need read rights on config file ${file} for user ${user}.`);
  }
  const lines = configLines(text);
  const get = (k: string, d?: string) => configValue(lines, k, env, d);
  const statedir = get('statedir');
  if (!statedir) throw new LocalCaError(`Missing 'statedir' config value in config file ${file}.`);
  makeDir(statedir, 'statedir', log);
  if (!can(statedir, constants.R_OK | constants.W_OK))
    throw new LocalCaError(`Need read/write rights on statedir ${statedir} for user ${user}.`);
  const lock = join(statedir, LOCKFILE_NAME);
  if (existsSync(lock) && !can(lock, constants.R_OK | constants.W_OK))
    throw new LocalCaError(`Need read/write rights on ${lock} for user ${user}.`);
  const signingkey = get('signingkey');
  if (!signingkey)
    throw new LocalCaError(`Missing 'signingkey' config value in config file ${file}.`);
  if (/^(pkcs11|tpmkey):/.test(signingkey))
    throw new LocalCaError(
      `The signing key '${signingkey}' is not a file; tswtpm_localca supports PEM key files only.`,
    );
  makeDir(dirname(signingkey), 'signkey', log);
  const signingkeyPassword = get('signingkey_password');
  const parentkeyPassword = get('parentkey_password');
  const issuercert = get('issuercert');
  if (!issuercert)
    throw new LocalCaError(`Missing 'issuercert' config value in config file ${file}.`);
  makeDir(dirname(issuercert), 'issuercert', log);
  const certserial = get('certserial', join(statedir, 'certserial')) ?? '';
  return {
    statedir,
    signingkey,
    issuercert,
    certserial,
    ...(signingkeyPassword !== undefined ? { signingkeyPassword } : {}),
    ...(parentkeyPassword !== undefined ? { parentkeyPassword } : {}),
  };
}

const lockPath = (cfg: LocalCaConfig) => join(cfg.statedir, LOCKFILE_NAME);
/** The lock file's mode as swtpm_localca creates it (0775 & ~umask). */
const LOCK_MODE = 0o775;

/**
 * §4.4 steps 7-8: creates the CA when the signing key or the issuer certificate is missing
 * (an existing but unreadable key is an error, not a reason to replace it).
 */
export async function ensureCa(
  cfg: LocalCaConfig,
  env: NodeJS.ProcessEnv,
  log: InfoLog,
): Promise<void> {
  const user = currentUser();
  if (existsSync(cfg.signingkey) && !can(cfg.signingkey, constants.R_OK))
    throw new LocalCaError(`Need read rights on signing key ${cfg.signingkey} for user ${user}.`);
  if (!existsSync(cfg.signingkey) || !existsSync(cfg.issuercert)) {
    log("Creating root CA and a local CA's signing key and issuer cert.");
    const lock = await lockFile(lockPath(cfg), LOCK_MODE);
    try {
      // Another process (or an in-process caller) may have made it while we waited.
      if (!existsSync(cfg.signingkey) || !existsSync(cfg.issuercert))
        await createCa(cfg, env.SWTPM_ROOTCA_PASSWORD);
    } catch (e) {
      throw new LocalCaError(
        `Error creating local CA's signing key and cert.\n${(e as Error).message}`,
      );
    } finally {
      lock.release();
    }
  }
  if (!can(cfg.issuercert, constants.R_OK))
    throw new LocalCaError(
      `Need read rights on issuer certificate ${cfg.issuercert} for user ${user}.`,
    );
  makeDir(dirname(cfg.certserial), 'certserial', log);
}

/** The highest serial swtpm 0.10 allows (20 bytes); beyond it a fresh one is drawn. */
const MAX_SERIAL = (1n << 159n) - 1n;

/**
 * A fresh start: a random 19-digit decimal below 2^63, so that both Debian's 0.7.1 (which
 * reads an unsigned 64-bit number) and swtpm 0.10 keep incrementing it (docs/compat.md).
 */
function freshSerial(): bigint {
  return BigInt(randomInt(100_000, 900_000)) * 10n ** 13n + BigInt(randomInt(0, 2 ** 40));
}

/** Parses a certserial file as swtpm 0.10: leading whitespace and trailing junk tolerated. */
export function parseSerial(text: string): bigint | undefined {
  if (text.length === 0 || text.length > 49) return undefined;
  const m = /^\s*(\d+)/.exec(text);
  return m === null ? undefined : BigInt(m[1]!);
}

/**
 * §4.6: allocates the next serial number under the lock and writes it back (0664 & ~umask,
 * no newline). A missing file starts at 1 (so the first certificate gets 2, as 0.7.1).
 */
export async function nextSerial(cfg: LocalCaConfig): Promise<bigint> {
  const lock = await lockFile(lockPath(cfg), LOCK_MODE);
  try {
    if (!existsSync(cfg.certserial)) writeFileSync(cfg.certserial, '1', { mode: 0o664 });
    const prev = parseSerial(readFileSync(cfg.certserial, 'latin1'));
    let serial = prev === undefined ? freshSerial() : prev + 1n;
    if (serial > MAX_SERIAL) serial = freshSerial();
    writeFileSync(cfg.certserial, serial.toString(), { mode: 0o664 });
    return serial;
  } finally {
    lock.release();
  }
}
