import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import tty from 'node:tty';
import { type Conn, fdWriter, noop } from './conn.js';

/**
 * A character device or pty as a data channel (`chardev --chardev PATH`, `--fd N`): one
 * read() per command, written back with write(). A tty is read and written through
 * libuv's tty handle (poll-based): libuv reopens a pty slave non-blocking, so a write
 * to a peer that does not read waits for room instead of failing with EAGAIN, and
 * nothing blocks in the thread pool. Other devices are read with fs reads of up to
 * 4105 bytes (swtpm's read size) and written synchronously, as swtpm does.
 */
export function charDeviceConn(fd: number): Conn {
  return tty.isatty(fd) ? ttyConn(fd) : deviceConn(fd);
}

function ttyConn(fd: number): Conn {
  const ts = new tty.ReadStream(fd);
  let closed = false;
  let unsent = 0;
  const release = () => {
    if (closed && unsent === 0) ts.destroy();
  };
  const conn: Conn = {
    peer: `fd ${fd}`,
    onData: noop,
    onClose: noop,
    onDrain: noop,
    onEnd: () => conn.close(),
    write(buf) {
      if (closed) return true;
      unsent++;
      return ts.write(buf, () => {
        unsent--;
        release();
      });
    },
    close() {
      if (closed) return;
      closed = true;
      release();
      conn.onClose();
    },
    pause: () => ts.pause(),
    resume: () => ts.resume(),
  };
  ts.on('data', (chunk: Buffer) => conn.onData(chunk, []));
  ts.on('drain', () => conn.onDrain());
  ts.on('end', () => conn.close());
  ts.on('error', () => {
    unsent = 0;
    conn.close();
    ts.destroy();
  });
  return conn;
}

function deviceConn(fd: number): Conn {
  const rs: Readable = createReadStream('', { fd, highWaterMark: 4105, autoClose: true });
  let closed = false;
  const conn: Conn = {
    peer: `fd ${fd}`,
    onData: noop,
    onClose: noop,
    onDrain: noop,
    onEnd: () => conn.close(),
    // A failed write(): the device is gone (EIO) or not writable.
    write: fdWriter(
      fd,
      () => closed,
      () => conn.close(),
    ),
    close() {
      if (closed) return;
      closed = true;
      rs.destroy();
      conn.onClose();
    },
    pause: () => rs.pause(),
    resume: () => rs.resume(),
  };
  rs.on('data', (chunk) => conn.onData(chunk as Buffer, []));
  rs.on('end', () => conn.close());
  rs.on('error', () => conn.close());
  return conn;
}
