import { constants, closeSync, openSync, writeSync } from 'node:fs';
import { CliError } from '../common/subopts.js';
import { errText } from '../common/sys.js';

/** Where and how libtpms writes its own log (TPMLIB_SetDebugFD/Level/Prefix). */
export interface LibtpmsLog {
  readonly fd: number;
  /** libtpms' own level: `--log level=N` minus 4, 0 (off) below 5. */
  readonly level: number;
  /** `prefix=` plus four spaces, so libtpms lines sit below swtpm's own. */
  readonly prefix: string;
}

/** swtpm's --log level from which libtpms' own debug output is on (at level N-4). */
const LIBTPMS_LEVEL_OFFSET = 4;

/** Leading spaces of a message: swtpm's nesting level of that line. */
function indentOf(msg: string): number {
  let n = 0;
  while (msg.charCodeAt(n) === 0x20) n++;
  return n;
}

/**
 * swtpm-compatible `--log file=|fd=,level=,prefix=,truncate`. As in swtpm, a message
 * prints only if it has fewer leading spaces than the level (level 1: unindented lines
 * only; the one-space traffic dumps from level 2; libtpms' lines, four spaces and
 * deeper, from level 5). Any `--log` means level 1 at least and clears the program-name
 * prefix; `prefix=` is written before every line. Without `--log`, errors go to stderr
 * prefixed with the program name, as swtpm does.
 *
 * Every write is one synchronous write() on the log fd, which libtpms writes to as
 * well; a log file is opened O_APPEND (unless `truncate`), so lines never tear.
 */
export class Logger {
  private fd: number;
  private readonly own: boolean;
  readonly level: number;
  private readonly prefix: string;
  /** No `--log` at all: errors on stderr as `tswtpm: ...`, libtpms left alone. */
  private readonly console: boolean;

  constructor(opts: Record<string, string | number | boolean> | undefined) {
    this.console = opts === undefined;
    this.prefix = typeof opts?.prefix === 'string' ? opts.prefix : '';
    this.level =
      opts === undefined ? 1 : Math.max(1, typeof opts.level === 'number' ? opts.level : 1);
    this.own = false;
    this.fd = 2;
    if (opts === undefined || (opts.file === undefined && opts.fd === undefined)) return;
    if (opts.file === '-') {
      this.fd = -1;
    } else if (typeof opts.file === 'string') {
      // swtpm: O_NOFOLLOW, 0600; O_APPEND, or O_TRUNC without it for `truncate`.
      const { O_WRONLY, O_CREAT, O_NOFOLLOW, O_TRUNC, O_APPEND } = constants;
      const flags = O_WRONLY | O_CREAT | O_NOFOLLOW | (opts.truncate === true ? O_TRUNC : O_APPEND);
      try {
        this.fd = openSync(opts.file, flags, 0o600);
      } catch (err) {
        throw new CliError(`Could not open logfile '${opts.file}': ${errText(err)}`);
      }
      this.own = true;
    } else {
      this.fd = opts.fd as number;
    }
  }

  /** An error: always written (stderr when no log file is configured). */
  error(msg: string): void {
    if (this.fd === -1) return;
    this.write(`${this.console ? 'tswtpm: ' : this.prefix}${msg}\n`);
  }

  /**
   * A message at `level` (tswtpm's own, printed when `level` ≤ the configured one) that
   * also passes swtpm's indentation rule. Never on the console without `--log`.
   */
  info(level: number, msg: string): void {
    if (!this.passes(level, msg)) return;
    this.write(`${this.prefix}${msg}\n`);
  }

  /**
   * A multi-line block such as a traffic dump: printed when its first line passes (as
   * swtpm filters the header line and writes the rows after it), every line prefixed.
   */
  raw(level: number, text: string): void {
    if (!this.passes(level, text)) return;
    const body = text.endsWith('\n') ? text.slice(0, -1) : text;
    this.write(`${this.prefix}${body.split('\n').join(`\n${this.prefix}`)}\n`);
  }

  /**
   * swtpm's log_set_level for libtpms: undefined without `--log` or with `file=-`
   * (libtpms keeps its default, stderr); else the log fd, always (so libtpms' failure
   * messages land in the log), and from level 5 on libtpms' own trace at level N-4.
   */
  libtpmsLog(): LibtpmsLog | undefined {
    if (this.console || this.fd === -1) return undefined;
    const level = this.level > LIBTPMS_LEVEL_OFFSET ? this.level - LIBTPMS_LEVEL_OFFSET : 0;
    return { fd: this.fd, level, prefix: `${this.prefix}    ` };
  }

  private passes(level: number, msg: string): boolean {
    if (this.fd === -1 || this.console || level > this.level) return false;
    const indent = indentOf(msg);
    // Empty and all-space messages never print.
    return indent < this.level && indent < msg.length && msg.charCodeAt(indent) !== 0x0a;
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
