/**
 * swtpm_setup's logging (provisioning.md §1.5): without --logfile informational lines go
 * to stdout and errors to stderr; with --logfile both are appended to the file, which is
 * opened anew for every line (O_APPEND|O_CREAT|O_NOFOLLOW, 0640). No timestamps.
 */
import { constants, closeSync, openSync, writeSync } from 'node:fs';
import { errText } from '../common/sys.js';

export class SetupLogger {
  private logfile: string | undefined;

  /** Sends every later line to `file` (after the caller checked it can be written). */
  setLogfile(file: string): void {
    this.logfile = file;
  }

  get file(): string | undefined {
    return this.logfile;
  }

  info = (line: string): void => this.write(1, line);
  error = (line: string): void => this.write(2, line);

  private write(fd: 1 | 2, line: string): void {
    const text = `${line}\n`;
    if (this.logfile === undefined) {
      writeSync(fd, text);
      return;
    }
    let f: number;
    try {
      const flags =
        constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;
      f = openSync(this.logfile, flags, 0o640);
    } catch (err) {
      writeSync(2, `Error opening file ${this.logfile}: ${errText(err)}\n`);
      return;
    }
    try {
      writeSync(f, text);
    } finally {
      closeSync(f);
    }
  }
}
