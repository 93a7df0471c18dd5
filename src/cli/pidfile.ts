import { closeSync, openSync, writeSync } from 'node:fs';
import { CliError } from './subopts.js';

/**
 * `--pid file=P|fd=N`: writes the process id. Returns the file to remove at exit
 * (none for an fd, which the caller owns).
 */
export function writePid(o: Record<string, string | number | boolean>): string | undefined {
  const text = `${process.pid}\n`;
  if (typeof o.fd === 'number') {
    writeSync(o.fd, text);
    return undefined;
  }
  const file = o.file as string;
  try {
    const fd = openSync(file, 'w', 0o644);
    writeSync(fd, text);
    closeSync(fd);
  } catch (err) {
    throw new CliError(
      `Could not open pidfile ${file} : ${(err as NodeJS.ErrnoException).message}`,
    );
  }
  return file;
}
