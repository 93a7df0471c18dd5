/**
 * `--print-info`, `--print-profiles` and `--profile` (swtpm 0.10+). GetInfo exists in
 * libtpms 0.9 (bits 0x1, 0x2, 0x4; it answers `{}` for the 0.10 bits 0x8..0x80);
 * profiles need libtpms 0.10, detected by the presence of TPMLIB_SetProfile.
 */
import { closeSync, readFileSync, readSync } from 'node:fs';
import type { Engine } from '../../engine/engine.js';
import type { TpmVersion } from '../../engine/types.js';
import { CliError } from '../common/subopts.js';
import type { Config } from './args.js';

/** TPMLIB_INFO_AVAILABLE_PROFILES (libtpms 0.10). */
export const TPMLIB_INFO_AVAILABLE_PROFILES = 0x40;
/** swtpm reads at most this much of a `--profile fd=` (a 10 KiB buffer, NUL kept). */
const PROFILE_FD_MAX = 10239;

/** TPMLIB_GetVersion's 0x00MMmmuu as `M.m.u`. */
export function libtpmsVersionText(v: number): string {
  return `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`;
}

/** swtpm 0.10 cannot run on libtpms < 0.10 at all; tswtpm names what is missing. */
function needProfiles(engine: Engine, what: string): void {
  if (engine.setProfile !== undefined) return;
  throw new CliError(
    `${what} requires libtpms 0.10 or later with profile support; the loaded libtpms is ${libtpmsVersionText(engine.libraryVersion)}`,
  );
}

/** TPMLIB_GetInfo(flags) as swtpm prints it: the JSON and a newline. */
export function infoText(engine: Engine, flags: number): string {
  return `${engine.getInfo(BigInt(flags)) ?? '(null)'}\n`;
}

/** `--print-profiles`: TPMLIB_GetInfo(0x40) without a newline (as swtpm prints it). */
export function profilesText(engine: Engine): string {
  needProfiles(engine, '--print-profiles');
  return engine.getInfo(BigInt(TPMLIB_INFO_AVAILABLE_PROFILES)) ?? '';
}

/**
 * What `--print-profiles`, or `--print-info` without a state location (GetInfo without
 * MainInit), prints; undefined when neither applies. Chooses the TPM version first.
 */
export function earlyInfo(cfg: Config, version: TpmVersion, engine: Engine): string | undefined {
  if (!cfg.printProfiles && cfg.printInfo === 0) return undefined;
  engine.choose(version);
  if (cfg.printProfiles) return profilesText(engine);
  const stateGiven = cfg.tpmstate !== undefined || (process.env.TPM_PATH ?? '') !== '';
  return stateGiven ? undefined : infoText(engine, cfg.printInfo);
}

/**
 * The JSON profile `--profile` asks for, or undefined without the option (and for
 * TPM 1.2, which swtpm ignores it for). Throws CliError with swtpm's messages, or the
 * libtpms requirement; nothing has been written when it throws.
 */
export function resolveProfile(cfg: Config, engine: Engine): string | undefined {
  const o = cfg.profile;
  if (o === undefined) return undefined;
  needProfiles(engine, '--profile');
  const rd = o['remove-disabled'];
  if (rd !== undefined && rd !== 'check' && rd !== 'fips-host') {
    throw new CliError(`Invalid option parameter '${String(rd)}' for 'remove-disabled'`);
  }
  if (rd !== undefined) {
    // Removing FIPS-disabled algorithms needs OpenSSL probing that tswtpm lacks.
    throw new CliError("The profile option parameter 'remove-disabled' is not supported");
  }
  const given = ['profile', 'name', 'file'].filter((k) => o[k] !== undefined).length;
  // swtpm's check is arithmetic: with fd= given, a second parameter slips through.
  if (given > 1 && o.fd === undefined) {
    throw new CliError(
      "Only one profile option parameter of 'profile', 'name', 'fd', or 'file' may be provided",
    );
  }
  let json: string;
  if (typeof o.profile === 'string') json = o.profile;
  else if (typeof o.name === 'string') json = `{"Name":"${o.name}"}`;
  else if (typeof o.file === 'string') json = readProfileFile(o.file);
  else if (typeof o.fd === 'number') json = readProfileFd(o.fd);
  else throw new CliError('No profile option parameter given to get a profile');
  return cfg.tpm2 ? json.trim() : undefined;
}

function readProfileFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`Failed to open file ${path}: ${(err as Error).message}`);
  }
}

function readProfileFd(fd: number): string {
  const buf = Buffer.alloc(PROFILE_FD_MAX);
  let n = 0;
  try {
    for (;;) {
      const r = readSync(fd, buf, n, PROFILE_FD_MAX - n, null);
      if (r === 0 || n + r >= PROFILE_FD_MAX) {
        n += r;
        break;
      }
      n += r;
    }
  } catch (err) {
    throw new CliError(`Could not read from file descriptor ${fd}: ${(err as Error).message}`);
  } finally {
    try {
      closeSync(fd);
    } catch {}
  }
  return buf.toString('utf8', 0, n);
}
