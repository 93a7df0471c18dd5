/**
 * The benchmark's client: a lean raw-socket client, the same for both servers.
 *
 * Why not TpmClient/ControlClient (src/client): their per-call machinery (a promise
 * queue, a deadline wrapper, read() promises per header and body, a Buffer.concat
 * per response) adds 5–6 µs to every round trip against either server (the bench's
 * "via TpmClient" row; docs/performance.md), a quarter of swtpm's round trip, which
 * would squeeze every ratio toward 1.0 and hide the servers' difference. This client does
 * one write per request and completes from the socket's 'data' callback, with no
 * promise in the timed loop. It uses our own control codec to build the requests.
 */
import net from 'node:net';
import { type CtrlRequest, defByName, encodeSocketRequest } from '../src/protocol/ctrl/index.js';

/** A TCP port or a Unix socket path. */
export type Addr = { readonly port: number } | { readonly path: string };

/**
 * How many bytes the complete response needs, given what has arrived. Returning at
 * most `buf.length` completes it.
 */
export type Framer = (buf: Buffer) => number;

/** A TPM response: the size field at offset 2. */
export const tpmFrame: Framer = (b) => (b.length < 6 ? 6 : b.readUInt32BE(2));

/** A fixed-size control response; an error result ends it after 4 bytes. */
export const ctrlFrame =
  (size: number): Framer =>
  (b) =>
    b.length >= 4 && size > 8 && b.readUInt32BE(0) !== 0 ? 4 : size;

/** GET_STATEBLOB on a socket: 16-byte header, then totlength bytes. */
export const blobFrame: Framer = (b) => {
  if (b.length < 4) return 4;
  if (b.readUInt32BE(0) !== 0) return b.length; // error: whatever came (4 or 16 bytes)
  return b.length < 16 ? 16 : 16 + b.readUInt32BE(8);
};

type Done = (err: Error | undefined, rsp: Buffer) => void;

const EMPTY = Buffer.alloc(0);

export class RawConn {
  readonly sock: net.Socket;
  #acc: Buffer = EMPTY;
  #frame: Framer = tpmFrame;
  #done: Done | undefined;
  #closed = false;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => this.#onData(chunk));
    sock.on('close', () => {
      this.#closed = true;
      this.#fail(new Error('connection closed before the response'));
    });
    sock.on('error', () => {});
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Connects once; rejects with the socket error (ECONNREFUSED while a server starts). */
  static connect(addr: Addr): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const sock = 'path' in addr ? net.connect(addr.path) : net.connect(addr.port, '127.0.0.1');
      const onErr = (e: Error) => {
        sock.destroy();
        reject(e);
      };
      sock.once('error', onErr);
      sock.once('connect', () => {
        sock.off('error', onErr);
        resolve(new RawConn(sock));
      });
    });
  }

  /** Sends `msg` and calls `done` once with the complete response (callback style: no promise). */
  send(msg: Uint8Array, frame: Framer, done: Done): void {
    if (this.#closed) {
      done(new Error('connection closed'), EMPTY);
      return;
    }
    this.#frame = frame;
    this.#done = done;
    this.sock.write(msg);
  }

  request(msg: Uint8Array, frame: Framer = tpmFrame): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.send(msg, frame, (err, rsp) => (err ? reject(err) : resolve(rsp)));
    });
  }

  close(): void {
    this.sock.destroy();
  }

  #onData(chunk: Buffer): void {
    const b = this.#acc.length === 0 ? chunk : Buffer.concat([this.#acc, chunk]);
    if (b.length < this.#frame(b) || this.#done === undefined) {
      this.#acc = b;
      return;
    }
    this.#acc = EMPTY;
    const done = this.#done;
    this.#done = undefined;
    done(undefined, b);
  }

  #fail(err: Error): void {
    const done = this.#done;
    this.#done = undefined;
    done?.(err, EMPTY);
  }
}

/** A control request as one buffer (code and body, one write). */
export function ctrlRequest(req: CtrlRequest): Buffer {
  return encodeSocketRequest(req, defByName(req.cmd));
}

export const CTRL = {
  getCapability: ctrlRequest({ cmd: 'GET_CAPABILITY' }),
  setLocality0: ctrlRequest({ cmd: 'SET_LOCALITY', locality: 0 }),
  stop: ctrlRequest({ cmd: 'STOP' }),
  init: ctrlRequest({ cmd: 'INIT', initFlags: 0 }),
  getPermanentBlob: ctrlRequest({ cmd: 'GET_STATEBLOB', stateFlags: 0, type: 1, offset: 0 }),
} as const;

/** SET_STATEBLOB(permanent) carrying `blob`. */
export const setPermanentBlob = (blob: Uint8Array): Buffer =>
  ctrlRequest({ cmd: 'SET_STATEBLOB', stateFlags: 0, type: 1, length: blob.length, data: blob });

/** The result field of a control response. */
export const ctrlResult = (rsp: Buffer): number => rsp.readUInt32BE(0);

/**
 * Times `n` round trips of `msg` on `conn`, one in flight, in µs. `check` sees each
 * response (outside the timed span); a false return fails the run.
 */
export function timeLoop(
  conn: RawConn,
  msg: Uint8Array | (() => Uint8Array),
  frame: Framer,
  n: number,
  check: (rsp: Buffer) => boolean,
): Promise<Float64Array> {
  return new Promise((resolve, reject) => {
    const t = new Float64Array(n);
    let i = 0;
    let t0 = 0;
    const done: Done = (err, rsp) => {
      const t1 = performance.now();
      if (err) return reject(err);
      t[i++] = (t1 - t0) * 1000;
      if (!check(rsp))
        return reject(new Error(`unexpected response ${rsp.toString('hex', 0, 16)}`));
      if (i === n) return resolve(t);
      next();
    };
    const next = () => {
      const m = typeof msg === 'function' ? msg() : msg;
      t0 = performance.now();
      conn.send(m, frame, done);
    };
    next();
  });
}

/** Connects, retrying every `everyMs` until `timeoutMs` (a server that is starting). */
export async function connectRetry(addr: Addr, timeoutMs = 10000, everyMs = 1): Promise<RawConn> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await RawConn.connect(addr);
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}
