import { closeSync } from 'node:fs';
import { MAX_COMMAND_READ, bytesToTell, unitLength } from '../protocol/tpm/framing.js';
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
 *
 * Like swtpm, which reads the next command only after it wrote the last response, the
 * connection is paused while a command runs or a response waits in the transport: a
 * peer that writes without reading fills its own socket buffers, not our memory.
 * A peer that half-closes still gets the answers to what it sent, then the close.
 */
export function serveData(dev: Device, conn: Conn, opts: DataSessionOptions): void {
  let buf: Buffer = EMPTY;
  /** A command runs off the event loop. */
  let busy = false;
  /** A response is still queued in the transport (write() returned false). */
  let draining = false;
  /** The peer half-closed: what is left is served, then the connection closes. */
  let ended = false;
  let paused = false;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const wait = opts.completionMs ?? 500;

  /** Reads only while idle; closes a half-closed connection once all is answered. */
  const flow = () => {
    if (closed) return;
    const hold = busy || draining;
    if (hold !== paused) {
      paused = hold;
      if (hold) conn.pause();
      else conn.resume();
    }
    if (!hold && ended && buf.length < 10) conn.close();
  };

  const send = (rsp: Uint8Array) => {
    if (closed) return;
    traceWire('SWTPM_IO_Write', rsp, dev);
    if (!conn.write(rsp)) draining = true;
    if (opts.disconnect) conn.close();
  };

  const pump = (flushFirst: boolean) => {
    let flush = flushFirst || ended;
    while (!busy && !draining && !closed && buf.length >= 10) {
      const n = unitLength(buf, opts.allowPrefix);
      // A prefixed unit cut inside its header is incomplete too, not an implausible size.
      const short =
        n === undefined ? buf.length < bytesToTell(buf, opts.allowPrefix) : buf.length < n;
      if (short && !flush) {
        timer ??= setTimeout(() => {
          timer = undefined;
          pump(true);
        }, wait);
        break;
      }
      flush = ended;
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
      const take = Math.min(n ?? buf.length, buf.length, MAX_COMMAND_READ);
      const cmd = buf.subarray(0, take);
      traceWire('SWTPM_IO_Read', cmd, dev);
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
        break;
      }
      send(r);
    }
    flow();
  };

  conn.onData = (chunk, fds) => {
    for (const fd of fds) closeSync(fd);
    // Only the unanswered rest of one read is ever kept (at most one chunk plus one
    // command), since reading stops while anything is pending.
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    pump(false);
  };
  conn.onDrain = () => {
    if (!draining) return;
    draining = false;
    pump(false);
  };
  conn.onEnd = () => {
    ended = true;
    pump(true);
  };
  conn.onClose = () => {
    closed = true;
    if (timer !== undefined) clearTimeout(timer);
    opts.onEnd?.();
  };
}
