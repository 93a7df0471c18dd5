import { createReadStream, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import tty from 'node:tty';
import { type Conn, noop } from './conn.js';

/**
 * A character device or pty as a data channel (`chardev --chardev PATH`, `--fd N`): one
 * read() per command, written back with write(). A tty is read through libuv's tty
 * handle (poll-based), so nothing blocks in the thread pool and the process can exit;
 * other devices are read with fs reads of up to 4105 bytes (swtpm's read size).
 */
export function charDeviceConn(fd: number): Conn {
  const rs: Readable = tty.isatty(fd)
    ? new tty.ReadStream(fd)
    : createReadStream('', { fd, highWaterMark: 4105, autoClose: true });
  let closed = false;
  const conn: Conn = {
    peer: `fd ${fd}`,
    onData: noop,
    onClose: noop,
    write(buf) {
      if (!closed) writeSync(fd, buf);
    },
    close() {
      if (closed) return;
      closed = true;
      rs.destroy();
      conn.onClose();
    },
    pause: () => rs.pause(),
    resume: () => rs.resume(),
  };
  rs.on('data', (chunk: Buffer) => conn.onData(chunk, []));
  rs.on('end', () => conn.close());
  rs.on('error', () => conn.close());
  return conn;
}
