/**
 * State encryption options (provisioning.md §1.8): exactly one of --keyfile, --pwdfile,
 * --keyfile-fd, --pwdfile-fd (in that priority) becomes the emulator's `--key` value
 * with `,mode=<cipher>`. The key itself is checked by the emulator.
 */
import { constants, accessSync } from 'node:fs';
import { CliError } from '../common/subopts.js';
import type { ValueOpt } from './options.js';

const CIPHERS = ['aes-128-cbc', 'aes-cbc', 'aes-256-cbc'];

export interface KeyChoice {
  /** `file=<f>,mode=…` etc. */
  readonly key: string;
  /** The line logged before the start line. */
  readonly logLine: string;
  /** An fd the emulator must inherit at the same number. */
  readonly fd?: number;
}

export function chooseKey(
  values: ReadonlyMap<ValueOpt, string>,
  user: string,
): KeyChoice | undefined {
  const cipher = values.get('cipher') ?? 'aes-128-cbc';
  if (!CIPHERS.includes(cipher)) throw new CliError(`Unsupported cipher ${cipher}.`);
  const mode = `,mode=${cipher}`;
  const readable = (f: string, what: string) => {
    try {
      accessSync(f, constants.R_OK);
    } catch {
      throw new CliError(`User ${user} cannot read ${what} ${f}.`);
    }
  };
  const keyfile = values.get('keyfile');
  if (keyfile !== undefined) {
    readable(keyfile, 'keyfile');
    return {
      key: `file=${keyfile}${mode}`,
      logLine: "  The TPM's state will be encrypted with a provided key.",
    };
  }
  const pwdfile = values.get('pwdfile');
  if (pwdfile !== undefined) {
    readable(pwdfile, 'passphrase file');
    return {
      key: `pwdfile=${pwdfile}${mode}`,
      logLine: "  The TPM's state will be encrypted using a key derived from a passphrase.",
    };
  }
  const keyfd = values.get('keyfile-fd');
  if (keyfd !== undefined) {
    return {
      key: `fd=${keyfd}${mode}`,
      logLine: "  The TPM's state will be encrypted with a provided key (fd).",
      fd: Number(keyfd),
    };
  }
  const pwdfd = values.get('pwdfile-fd');
  if (pwdfd !== undefined) {
    return {
      key: `pwdfd=${pwdfd}${mode}`,
      logLine: "  The TPM's state will be encrypted using a key derived from a passphrase (fd).",
      fd: Number(pwdfd),
    };
  }
  return undefined;
}
