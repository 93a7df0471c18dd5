import { serveData } from '../../../src/device/data-session.js';
/**
 * Data-channel framing (src/protocol/tpm/framing.ts, prefix.ts) and the data session's
 * receive loop (src/device/data-session.ts). The loop runs against a recording stand-in
 * for Device.tpmCommand (what libtpms answers is not the subject here; the data
 * channel against libtpms itself is covered by the network soak and the interop
 * tests). Properties: unitLength is undefined or within [10, MAX_COMMAND_READ] after an
 * optional 9-byte prefix and agrees with the header's size field; the prefix parser
 * agrees with unitLength on whether a prefix is there; a prefixed response is wrapped
 * as length ‖ response ‖ 0; the units handed to the device never exceed
 * MAX_COMMAND_READ and, when every unit was complete, are the same whatever the
 * chunking.
 */
import type { Device } from '../../../src/device/device.js';
import { MAX_COMMAND_READ, unitLength } from '../../../src/protocol/tpm/framing.js';
import {
  PREFIX_SIZE,
  parseSendCommandPrefix,
  wrapPrefixedResponse,
} from '../../../src/protocol/tpm/prefix.js';
import type { Conn } from '../../../src/transport/conn.js';
import { assert, Input, chunked } from './props.js';

function checkUnit(buf: Buffer, prefixAllowed: boolean): void {
  const n = unitLength(buf, prefixAllowed);
  if (n === undefined) return;
  assert.ok(n >= 10 && n <= MAX_COMMAND_READ, `unit length ${n}`);
  const sizeAt = (off: number) => (buf.length >= off + 6 ? buf.readUInt32BE(off + 2) : -1);
  const plain = sizeAt(0) === n;
  const prefixed =
    prefixAllowed && buf.readUInt32BE(0) === 8 && sizeAt(PREFIX_SIZE) === n - PREFIX_SIZE;
  assert.ok(plain || prefixed, `unit length ${n} matches no size field`);
  if (prefixed && !plain) {
    assert.ok(parseSendCommandPrefix(buf) !== undefined, 'prefix parser disagrees');
  }
}

function serve(chunks: readonly Buffer[], allowPrefix: boolean): Buffer[] {
  const units: Buffer[] = [];
  const dev = {
    tpmCommand: (cmd: Uint8Array) => {
      units.push(Buffer.from(cmd));
      return Buffer.from('80010000000a00000000', 'hex');
    },
  } as unknown as Device;
  let closed = false;
  const conn: Conn = {
    peer: 'fuzz',
    write: () => true,
    close: () => {
      closed = true;
    },
    pause: () => {},
    resume: () => {},
    onData: () => {},
    onEnd: () => {},
    onDrain: () => {},
    onClose: () => {},
  };
  serveData(dev, conn, { disconnect: false, allowPrefix, completionMs: 1 });
  for (const c of chunks) if (!closed) conn.onData(c, []);
  conn.onClose();
  for (const u of units) assert.ok(u.length <= MAX_COMMAND_READ && u.length >= 10);
  return units;
}

/** True when the stream is a sequence of complete units (so no timer decides). */
function allComplete(stream: Buffer, allowPrefix: boolean): boolean {
  let off = 0;
  while (stream.length - off >= 10) {
    const n = unitLength(stream.subarray(off), allowPrefix);
    if (n === undefined || off + n > stream.length) return false;
    off += n;
  }
  return off === stream.length;
}

export function fuzz(data: Buffer): void {
  const inp = new Input(data);
  const flags = inp.u8();
  const allowPrefix = (flags & 1) === 1;
  const plan = inp.bytes((flags >> 1) % 16);
  const stream = inp.rest();
  checkUnit(stream, allowPrefix);
  checkUnit(stream, !allowPrefix);

  const wrapped = wrapPrefixedResponse(stream);
  assert.equal(wrapped.readUInt32BE(0), stream.length);
  assert.deepEqual(wrapped.subarray(4, 4 + stream.length), stream);
  assert.equal(wrapped.readUInt32BE(4 + stream.length), 0);

  const whole = serve([stream], allowPrefix);
  const split = serve(chunked(stream, plan), allowPrefix);
  if (allComplete(stream, allowPrefix)) {
    assert.deepEqual(split, whole, 'units depend on how the stream was split');
  }
}
