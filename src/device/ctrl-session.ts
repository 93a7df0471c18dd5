import { closeSync } from 'node:fs';
import {
  type CtrlResponse,
  decodeSocketRequest,
  encodeSocketResponse,
  result4,
  socketBytesNeeded,
} from '../protocol/ctrl/index.js';
import { TPM_BAD_ORDINAL, TPM_BAD_PARAMETER, TPM_FAIL } from '../protocol/tpm/results.js';
import type { Conn } from '../transport/conn.js';
import { MAX_STATE_BLOB, control, stateCheck } from './control.js';
import type { Device } from './device.js';
import { traceWire } from './trace.js';

export interface CtrlSessionOptions {
  /** Deadline for the fixed part of a request (swtpm: 500 ms). */
  readonly deadlineMs?: number;
  /** Called once when the connection is gone (ctrl `terminate` exits then). */
  readonly onEnd?: () => void;
}

const EMPTY = Buffer.alloc(0);

/**
 * swtpm's receive buffer: code + the largest ptm_hdata. Its 500 ms deadline covers
 * everything of a request that fits in it, including the first HASH_DATA or
 * SET_STATEBLOB data bytes; only the rest is read without a deadline (§2.2).
 */
const RECV_BUFFER = 4 + 4100;

/**
 * Serves the control channel on one socket connection, big-endian (§2). Requests are
 * strictly one at a time. The fixed part of a request, and of HASH_DATA and
 * SET_STATEBLOB also their data up to swtpm's 4104-byte receive buffer, must arrive
 * within the deadline; data beyond that may take as long as it takes.
 */
export function serveCtrl(dev: Device, conn: Conn, opts: CtrlSessionOptions = {}): void {
  let buf: Buffer = EMPTY;
  let fds: number[] = [];
  let timer: NodeJS.Timeout | undefined;
  /** The deadline passed; the request expires after this turn's reads (atDeadline). */
  let late: NodeJS.Immediate | undefined;
  /** When the first byte of the current request arrived. */
  let started = 0;
  /** Tail bytes that must still arrive within the deadline (swtpm's first buffer). */
  let windowLeft = 0;
  let busy = false;
  /** A reply is still queued in the transport (write() returned false). */
  let draining = false;
  /** HASH_DATA chunks waiting behind a long TPM command (at most one: reading stops). */
  let hashing = 0;
  /** The peer half-closed: the pending request is answered, then the connection closes. */
  let ended = false;
  let paused = false;
  let closed = false;
  /** Streaming tail of HASH_DATA / SET_STATEBLOB. */
  let tail:
    | {
        kind: 'hash' | 'blob' | 'skip';
        remaining: number;
        parts: Buffer[];
        rc: number;
        /** 'skip': close after answering (data beyond swtpm's buffer is still pending). */
        close?: boolean;
      }
    | undefined;
  let blobHead: { stateFlags: number; type: number; length: number } | undefined;

  const reply = (rsp: Uint8Array, thenClose = false) => {
    if (closed) return;
    traceWire('Ctrl Rsp', rsp, dev);
    if (!conn.write(rsp)) draining = true;
    if (thenClose) conn.close();
  };

  /**
   * Reads only while nothing is pending (a running command, an unsent reply, a queued
   * hash chunk), so a peer that streams without reading cannot grow our memory.
   */
  const flow = () => {
    if (closed) return;
    const hold = busy || draining || hashing > 0;
    if (hold !== paused) {
      paused = hold;
      if (hold) conn.pause();
      else conn.resume();
    }
    if (!hold && ended) {
      // An incomplete request can no longer complete: answered as at its deadline.
      if (buf.length > 0 || tail !== undefined) {
        clearDeadline();
        expire();
      } else conn.close();
    }
  };

  const dropFds = () => {
    for (const fd of fds) closeSync(fd);
    fds = [];
  };

  const finish = (r: CtrlResponse | Promise<CtrlResponse>, encode: (x: CtrlResponse) => Buffer) => {
    if (!(r instanceof Promise)) {
      reply(encode(r));
      return;
    }
    busy = true;
    flow();
    r.then(
      (x) => {
        busy = false;
        reply(encode(x));
        pump();
      },
      () => conn.close(),
    );
  };

  const handle = (msg: Buffer) => {
    traceWire('Ctrl Cmd', msg, dev);
    const d = decodeSocketRequest(msg);
    if (!d.ok) {
      dropFds();
      if (d.def === undefined) return reply(result4(d.result || TPM_BAD_ORDINAL));
      const pre = stateCheck(dev, d.def.name);
      return reply(result4(pre || d.result));
    }
    const { def, req } = d;
    const encode = (x: CtrlResponse) => encodeSocketResponse(def, x);
    if (req.cmd === 'SET_DATAFD') {
      const fd = fds.shift();
      dropFds();
      return finish(control(dev, fd === undefined ? req : { ...req, fd }), encode);
    }
    dropFds();
    if (req.cmd === 'HASH_DATA') {
      const got = msg.length - 8;
      // swtpm checks the state before it looks at the data.
      const pre = stateCheck(dev, 'HASH_DATA');
      if (pre) return refuse(pre, 8 + req.length, msg.length);
      if (got > req.length) return reply(result4(TPM_BAD_PARAMETER));
      if (got === req.length) return finish(control(dev, req), encode);
      tail = { kind: 'hash', remaining: req.length - got, parts: [], rc: 0 };
      armWindow(8 + req.length, msg.length);
      return holdOrHash(tail, req.data);
    }
    if (req.cmd === 'SET_STATEBLOB') {
      const got = msg.length - 16;
      const pre = stateCheck(dev, 'SET_STATEBLOB');
      if (pre) return refuse(pre, 16 + req.length, msg.length);
      if (got > req.length) return reply(result4(TPM_BAD_PARAMETER));
      if (got === req.length) return finish(control(dev, req), encode);
      if (req.length > MAX_STATE_BLOB) return reply(result4(TPM_FAIL), true);
      blobHead = req;
      tail = { kind: 'blob', remaining: req.length - got, parts: [req.data as Buffer], rc: 0 };
      armWindow(16 + req.length, msg.length);
      return;
    }
    finish(control(dev, req), encode);
  };

  /**
   * An error found before the data of HASH_DATA / SET_STATEBLOB is read. swtpm has
   * already received the part that fits its buffer, so it answers after that and the
   * connection goes on; data beyond its buffer it would misparse as requests, so we
   * answer and close then.
   */
  const refuse = (rc: number, total: number, got: number) => {
    const close = total > RECV_BUFFER;
    if (Math.min(total, RECV_BUFFER) <= got) return reply(result4(rc), close);
    tail = { kind: 'skip', remaining: Math.min(total, RECV_BUFFER) - got, parts: [], rc, close };
    armWindow(total, got);
  };

  const feedHash = (data: Uint8Array) => {
    if (data.length === 0 || tail === undefined) return;
    const r = control(dev, { cmd: 'HASH_DATA', length: data.length, data });
    const note = (x: CtrlResponse) => {
      if (tail !== undefined && tail.rc === 0) tail.rc = x.result;
    };
    if (!(r instanceof Promise)) return note(r);
    hashing++;
    flow();
    void r.then((x) => {
      hashing--;
      note(x);
      pump();
    });
  };

  /**
   * swtpm hashes nothing until its receive buffer is complete: a request that misses
   * the deadline is dropped whole. So data is held while the window is open, then
   * hashed in one piece; data beyond the buffer is hashed as it arrives.
   */
  const holdOrHash = (t: NonNullable<typeof tail>, data: Uint8Array) => {
    if (windowLeft > 0) {
      t.parts.push(data as Buffer);
      return;
    }
    const held = t.parts.splice(0);
    feedHash(held.length === 0 ? data : Buffer.concat([...held, data]));
  };

  const armWindow = (total: number, got: number) => {
    windowLeft = Math.min(total, RECV_BUFFER) - got;
    if (windowLeft <= 0) return;
    const left = (opts.deadlineMs ?? 500) - (Date.now() - started);
    timer = setTimeout(atDeadline, Math.max(0, left));
  };

  const onTail = (chunk: Buffer): Buffer => {
    const t = tail!;
    const take = Math.min(chunk.length, t.remaining);
    const part = chunk.subarray(0, take);
    t.remaining -= take;
    if (windowLeft > 0) {
      windowLeft -= take;
      if (windowLeft <= 0) clearDeadline();
    }
    if (t.kind === 'hash') holdOrHash(t, part);
    else if (t.kind === 'blob') t.parts.push(part);
    if (t.remaining === 0) {
      tail = undefined;
      if (t.kind === 'skip') {
        reply(result4(t.rc), t.close);
      } else if (t.kind === 'hash') {
        // Queue behind the hashing calls so the result reflects all of them.
        finish(
          dev.serialize(() => ({ result: t.rc })),
          (x) => result4(x.result),
        );
      } else {
        const h = blobHead!;
        blobHead = undefined;
        const data = Buffer.concat(t.parts);
        finish(control(dev, { cmd: 'SET_STATEBLOB', ...h, data }), (x) => result4(x.result));
      }
    }
    return chunk.subarray(take);
  };

  const pump = () => {
    pumpRequests();
    flow();
  };

  const pumpRequests = () => {
    while (!busy && !draining && hashing === 0 && !closed && buf.length > 0) {
      if (tail !== undefined) {
        buf = onTail(buf);
        // swtpm master never reads past the announced length; the rest is a new request.
        continue;
      }
      const need = socketBytesNeeded(buf);
      if (buf.length < need) {
        if (timer === undefined && late === undefined) {
          timer = setTimeout(atDeadline, opts.deadlineMs ?? 500);
        }
        return;
      }
      clearDeadline();
      const msg = buf;
      buf = EMPTY;
      handle(msg);
    }
  };

  const clearDeadline = () => {
    if (timer !== undefined) clearTimeout(timer);
    if (late !== undefined) clearImmediate(late);
    timer = undefined;
    late = undefined;
  };

  /**
   * Node runs due timers before it reads the sockets that became readable meanwhile:
   * after a stall of this process (a long synchronous step, a busy machine) the rest of
   * a request that arrived in time may still be unread when its deadline fires. swtpm
   * polls first. So the request expires only after this loop turn's reads (setImmediate
   * runs after them), if they did not complete it.
   */
  const atDeadline = () => {
    timer = undefined;
    late = setImmediate(() => {
      late = undefined;
      expire();
    });
  };

  // swtpm closes silently when a request stays incomplete; we say why, then close.
  const expire = () => {
    timer = undefined;
    buf = EMPTY;
    tail = undefined;
    windowLeft = 0;
    dropFds();
    reply(result4(TPM_BAD_PARAMETER), true);
  };

  conn.onData = (chunk, newFds) => {
    if (tail === undefined && buf.length === 0) {
      started = Date.now();
      dropFds();
      fds = [...newFds];
    } else for (const fd of newFds) closeSync(fd);
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    pump();
  };
  conn.onDrain = () => {
    if (!draining) return;
    draining = false;
    pump();
  };
  conn.onEnd = () => {
    ended = true;
    pump();
  };
  conn.onClose = () => {
    closed = true;
    clearDeadline();
    dropFds();
    opts.onEnd?.();
  };
}
