import { constants, closeSync, openSync, writeSync } from 'node:fs';
import { errText } from './ioctl-sys.js';
import { CliError } from './subopts.js';

const { O_WRONLY, O_CREAT, O_APPEND, O_TRUNC, O_NOFOLLOW } = constants;

/**
 * swtpm-compatible `--log file=|fd=,level=,prefix=,truncate`. Messages at level 1 are
 * errors; higher levels are chattier. Without `--log`, errors go to stderr prefixed
 * with the program name, as swtpm does.
 */
export class Logger {
  private fd: number;
  private readonly own: boolean;
  readonly level: number;
  private readonly prefix: string;

  constructor(opts: Record<string, string | number | boolean> | undefined) {
    this.prefix = typeof opts?.prefix === 'string' ? opts.prefix : '';
    if (opts === undefined || (opts.file === undefined && opts.fd === undefined)) {
      this.fd = 2;
      this.own = false;
      this.level = typeof opts?.level === 'number' ? opts.level : 0;
      return;
    }
    this.level = typeof opts.level === 'number' ? opts.level : 1;
    if (opts.file === '-') {
      this.fd = -1;
      this.own = false;
    } else if (typeof opts.file === 'string') {
      // swtpm opens the log with O_NOFOLLOW: a symlink at the path is refused.
      const flags = O_WRONLY | O_CREAT | O_NOFOLLOW | (opts.truncate === true ? O_TRUNC : O_APPEND);
      try {
        this.fd = openSync(opts.file, flags, 0o600);
      } catch (err) {
        throw new CliError(`Could not open logfile '${opts.file}': ${errText(err)}`);
      }
      this.own = true;
    } else {
      this.fd = opts.fd as number;
      this.own = false;
    }
  }

  /** An error: always written (stderr when no log file is configured). */
  error(msg: string): void {
    if (this.fd === -1) return;
    const p = this.fd === 2 && this.prefix === '' ? 'tswtpm: ' : this.prefix;
    this.write(`${p}${msg}\n`);
  }

  /** A message at `level` (swtpm prints a line when its level ≤ the configured one). */
  info(level: number, msg: string): void {
    if (this.fd === -1 || this.fd === 2 || level > this.level) return;
    this.write(`${this.prefix}${msg}\n`);
  }

  /** Text already formatted (e.g. a hex dump), written when `level` ≤ the configured one. */
  raw(level: number, text: string): void {
    if (this.fd === -1 || this.fd === 2 || level > this.level) return;
    this.write(text);
  }

  private write(s: string): void {
    try {
      writeSync(this.fd, s);
    } catch {
      // A log that cannot be written must not stop the TPM.
    }
  }

  close(): void {
    if (this.own) closeSync(this.fd);
    this.fd = -1;
  }
}
