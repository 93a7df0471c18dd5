import { closeSync } from 'node:fs';
import { MAX_COMMAND_READ, unitLength } from '../protocol/tpm/framing.js';
import type { Conn } from '../transport/conn.js';
import type { Device } from './device.js';
import { traceWire } from './trace.js';

export interface DataSessionOptions {
  /** `--server ...,disconnect` and legacy `-p`: close after every response. */
  readonly disconnect: boolean;
  /** Accept the TCG send-command prefix (socket and chardev, not CUSE). */
  readonly allowPrefix: boolean;
  /** How long to wait for the rest of a command whose header announced more bytes. */
  readonly completionMs?: number;
  /** Called once when the connection is gone (`-t/--terminate` exits then). */
  readonly onEnd?: () => void;
}

const EMPTY = Buffer.alloc(0);

/**
 * Serves TPM commands on one data connection. A command is complete when its header's
 * size has arrived; a command that stays incomplete for `completionMs` is handed to
 * libtpms as is (swtpm's read-once behaviour). One command is in flight at a time.
 */
export function serveData(dev: Device, conn: Conn, opts: DataSessionOptions): void {
  let buf: Buffer = EMPTY;
  let busy = false;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const wait = opts.completionMs ?? 500;

  const send = (rsp: Uint8Array) => {
    if (closed) return;
    traceWire('SWTPM_IO_Write', rsp);
    conn.write(rsp);
    if (opts.disconnect) conn.close();
  };

  const pump = (flushFirst: boolean) => {
    let flush = flushFirst;
    while (!busy && !closed && buf.length >= 10) {
      const n = unitLength(buf, opts.allowPrefix);
      if (n !== undefined && buf.length < n && !flush) {
        timer ??= setTimeout(() => {
          timer = undefined;
          pump(true);
        }, wait);
        return;
      }
      flush = false;
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
      const take = Math.min(n ?? buf.length, buf.length, MAX_COMMAND_READ);
      const cmd = buf.subarray(0, take);
      traceWire('SWTPM_IO_Read', cmd);
      buf = take === buf.length ? EMPTY : buf.subarray(take);
      const r = dev.tpmCommand(cmd, opts.allowPrefix);
      if (r instanceof Promise) {
        busy = true;
        r.then(
          (rsp) => {
            busy = false;
            send(rsp);
            pump(false);
          },
          () => {
            busy = false;
            conn.close();
          },
        );
        return;
      }
      send(r);
    }
  };

  conn.onData = (chunk, fds) => {
    for (const fd of fds) closeSync(fd);
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    pump(false);
  };
  conn.onClose = () => {
    closed = true;
    if (timer !== undefined) clearTimeout(timer);
    opts.onEnd?.();
  };
}
