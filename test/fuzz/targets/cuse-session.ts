/**
 * The CUSE front end (src/device/cuse-session.ts) on a real Device, driven as the
 * kernel drives it but without /dev/cuse: the input is a sequence of requests. Most
 * get a valid `len`, an increasing even `unique` and a known opcode from the harness
 * (as the kernel guarantees), so the fuzzer reaches the ioctl, blob-transfer and
 * read/write paths; the rest stay raw. Properties: handle() never throws; a request
 * the session cannot make sense of is reported as a FuseCodecError or as the
 * session's own refusal, never as a TypeError/RangeError (a bug behind its catch-all);
 * every reply is well formed (len = bytes written, error 0 or a negative errno with no
 * payload) and answers a request that was sent; no request gets two replies.
 */
import { CuseSession } from '../../../src/device/cuse-session.js';
import { isLongCommand } from '../../../src/engine/commands.js';
import { CTRL_TABLE, ioctlNumber } from '../../../src/protocol/ctrl/index.js';
import { FuseCodecError, decodeOutHeader } from '../../../src/protocol/fuse/index.js';
import {
  CUSE_INIT,
  FUSE_INTERRUPT,
  FUSE_IOCTL,
  FUSE_OPEN,
  FUSE_POLL,
  FUSE_READ,
  FUSE_RELEASE,
  FUSE_WRITE,
  fuse_in_header,
  fuse_ioctl_in,
  fuse_write_in,
} from '../../../src/protocol/fuse/layout.js';
import { makeFuzzDevice } from './device.js';
import { assert, Input } from './props.js';

const fd = makeFuzzDevice();

const OPCODES = [
  CUSE_INIT,
  FUSE_OPEN,
  FUSE_READ,
  FUSE_WRITE,
  FUSE_IOCTL,
  FUSE_IOCTL,
  FUSE_IOCTL,
  FUSE_POLL,
  FUSE_RELEASE,
  FUSE_INTERRUPT,
];
const IOCTLS = CTRL_TABLE.map(ioctlNumber);
const H = fuse_in_header.size;

/** Makes one request from the input; `unique` as the kernel would hand it out. */
function nextRequest(inp: Input, unique: bigint): Buffer {
  const mode = inp.u8();
  const which = inp.u8();
  const raw = Buffer.from(inp.bytes(inp.u16() % 4200));
  if ((mode & 0xf0) === 0xf0) return raw; // left as the fuzzer wrote it
  const op = OPCODES[mode % OPCODES.length]!;
  const body = op === FUSE_IOCTL ? fuse_ioctl_in.size : op === FUSE_WRITE ? fuse_write_in.size : 40;
  const buf = Buffer.alloc(Math.max(raw.length, H + Math.min(body, raw.length)));
  raw.copy(buf);
  if (buf.length < H) return buf;
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt32LE(op, 4);
  buf.writeBigUInt64LE(unique, 8);
  if (op === CUSE_INIT && buf.length >= H + 8) {
    buf.writeUInt32LE(7, H);
    if ((mode & 0x40) === 0) buf.writeUInt32LE(38, H + 4);
  }
  if (op === FUSE_WRITE && buf.length >= H + 40) {
    buf.writeUInt32LE(buf.length - H - 40, H + 16);
    // Key generation runs on a worker thread; the target stays synchronous.
    const cmd = buf.subarray(H + 40);
    if (isLongCommand('2.0', cmd)) cmd[6] = 0xff;
  }
  if (op === FUSE_IOCTL && buf.length >= H + 32) {
    if ((mode & 0x20) === 0) buf.writeUInt32LE(IOCTLS[which % IOCTLS.length]!, H + 8);
    if ((mode & 0x40) === 0) buf.writeUInt32LE(buf.length - H - 32, H + 24);
    if ((mode & 0x80) === 0) buf.writeUInt32LE(8192, H + 28);
  }
  return buf;
}

/** Errors the session reports on purpose (its refusals), besides FuseCodecError. */
const REFUSAL = /^(unexpected |CUSE_INIT .* refused$)/;

export function fuzz(data: Buffer): void {
  fd.reset();
  const replies: Buffer[] = [];
  const session = new CuseSession(
    fd.dev,
    { write: (r) => replies.push(Buffer.from(r)) },
    {
      name: 'vtpm-fuzz',
      onProtocolError: (err) => {
        if (
          err instanceof FuseCodecError ||
          (err.constructor === Error && REFUSAL.test(err.message))
        )
          return;
        throw new Error(`CUSE session hid a ${err.name}: ${err.message}`, { cause: err });
      },
    },
  );
  const inp = new Input(data);
  const sent = new Map<bigint, number>();
  for (let unique = 2n; inp.left > 0 && unique < 200n; unique += 2n) {
    const req = nextRequest(inp, unique);
    if (req.length >= 16) {
      const u = req.readBigUInt64LE(8);
      sent.set(u, (sent.get(u) ?? 0) + 1);
    }
    session.handle(req);
  }
  assert.ok(!fd.dev.busy, 'device left busy');
  const answered = new Map<bigint, number>();
  for (const r of replies) {
    const h = decodeOutHeader(r);
    assert.equal(h.len, r.length, 'reply len');
    assert.ok(h.error <= 0 && h.error > -4096, `reply error ${h.error}`);
    if (h.error !== 0) assert.equal(r.length, 16, 'error reply with a payload');
    const n = (answered.get(h.unique) ?? 0) + 1;
    answered.set(h.unique, n);
    assert.ok(n <= (sent.get(h.unique) ?? 0), `more replies to unique ${h.unique} than requests`);
  }
}
