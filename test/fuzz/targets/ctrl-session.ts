/**
 * The control channel's receive loop (src/device/ctrl-session.ts) on a real Device,
 * without sockets: the input is a chunk plan and the byte stream a client sends.
 * As swtpm reads one request per read(), bytes that arrive together after the fixed
 * part of a request is complete belong to that request, so replies legitimately
 * depend on how the stream is cut; what must not matter is how the fixed part itself
 * trickles in. Properties: no exception leaves onData; every reply is one write of at
 * least the 4-byte result; delivering the first request's fixed part byte by byte
 * gives the same replies (results and lengths) as delivering it with the first chunk; the session is never
 * left paused or the device busy; afterwards a new session still answers
 * CMD_GET_CAPABILITY.
 */
import { serveCtrl } from '../../../src/device/ctrl-session.js';
import { socketBytesNeeded } from '../../../src/protocol/ctrl/index.js';
import type { Conn } from '../../../src/transport/conn.js';
import { makeFuzzDevice } from './device.js';
import { assert, Input, chunked } from './props.js';

const fd = makeFuzzDevice();

interface Run {
  readonly replies: Buffer[];
  readonly closed: boolean;
}

function run(chunks: readonly Buffer[]): Run {
  fd.reset();
  const replies: Buffer[] = [];
  let closed = false;
  let paused = false;
  const conn: Conn = {
    peer: 'fuzz',
    write: (b) => {
      assert.ok(!closed, 'write after close');
      replies.push(Buffer.from(b));
      return true;
    },
    close: () => {
      if (closed) return;
      closed = true;
      conn.onClose();
    },
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
    },
    onData: () => {},
    onEnd: () => {},
    onDrain: () => {},
    onClose: () => {},
  };
  serveCtrl(fd.dev, conn, {});
  for (const c of chunks) {
    if (closed) break;
    conn.onData(c, []);
  }
  // Short control commands are synchronous: nothing may still be pending.
  assert.ok(!paused, 'session left paused');
  assert.ok(!fd.dev.busy, 'device left busy');
  conn.close();
  for (const r of replies) assert.ok(r.length >= 4, `reply of ${r.length} bytes`);
  return { replies, closed };
}

const GET_CAPABILITY = Buffer.from('00000001', 'hex');

/**
 * What two runs must agree on: each reply's result and length. Contents may differ:
 * state blobs carry the TPM's clock and nonces, and the tpmEstablished bit outlives
 * libtpms' Terminate/Init within one process (seen while fuzzing; not in the blobs).
 */
function summary(replies: readonly Buffer[]): string[] {
  return replies.map(
    (r) => `${r.readUInt32BE(0).toString(16)}/${r.length <= 16 ? r.length : 'long'}`,
  );
}

export function fuzz(data: Buffer): void {
  const inp = new Input(data);
  const plan = inp.bytes(inp.u8() % 16);
  const stream = inp.rest();
  const chunks = chunked(stream, plan);
  const reference = run(chunks);
  const first = chunks[0];
  if (first !== undefined) {
    // Everything before the fixed part is complete is only buffered.
    const head = Math.min(socketBytesNeeded(first), first.length) - 1;
    const trickled: Buffer[] = [];
    for (let i = 0; i < head; i++) trickled.push(first.subarray(i, i + 1));
    trickled.push(first.subarray(Math.max(head, 0)), ...chunks.slice(1));
    const split = run(trickled);
    assert.deepEqual(
      summary(split.replies),
      summary(reference.replies),
      'replies depend on how the fixed part of a request arrived',
    );
  }
  const after = run([GET_CAPABILITY]);
  assert.equal(after.replies.length, 1);
  assert.equal(after.replies[0]!.readUInt32BE(0), 0);
}
