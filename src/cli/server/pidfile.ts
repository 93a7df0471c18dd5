import { constants, closeSync, openSync, realpathSync, writeSync } from 'node:fs';
import { CliError } from '../common/subopts.js';
import { errText } from '../common/sys.js';

const { O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW } = constants;

/**
 * `--pid file=P|fd=N`: writes the process id. Returns the file to remove at exit.
 * Like swtpm's pidfile_write(): `file=` is opened with O_NOFOLLOW (a symlink at P is
 * an error, never followed); for `fd=` the file behind the fd is found through
 * /proc/self/fd/N, the fd is written and closed, and that file is removed at exit.
 */
export function writePid(o: Record<string, string | number | boolean>): string | undefined {
  const text = String(process.pid); // swtpm writes no newline
  let fd: number;
  let file: string;
  if (typeof o.fd === 'number') {
    fd = o.fd;
    const link = `/proc/self/fd/${fd}`;
    try {
      file = realpathSync.native(link);
    } catch (err) {
      throw new CliError(`Could not read ${link}: ${errText(err)}`);
    }
  } else {
    file = o.file as string;
    try {
      fd = openSync(file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o644);
    } catch (err) {
      throw new CliError(`Could not open pidfile ${file} : ${errText(err)}`);
    }
  }
  try {
    writeSync(fd, text);
  } catch (err) {
    throw new CliError(`Could not write to pidfile : ${errText(err)}`);
  } finally {
    closeSync(fd);
  }
  return file;
}
