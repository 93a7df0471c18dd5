/**
 * FUSE/CUSE requests as read from /dev/cuse (src/protocol/fuse/requests.ts).
 * Properties: decodeRequest refuses only with FuseCodecError; a decoded header's len
 * is the read's length and uniqueOf agrees with it; variable data (WRITE, IOCTL) is
 * exactly the announced size; a decoded request re-encodes (kernel-side.ts, the
 * kernel's view) to the bytes it came from, except the fields a server ignores.
 */
import {
  FuseCodecError,
  type FuseRequest,
  decodeRequest,
  uniqueOf,
} from '../../../src/protocol/fuse/index.js';
import * as K from '../../../src/protocol/fuse/kernel-side.js';
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
} from '../../../src/protocol/fuse/layout.js';
import { assert, Input, only } from './props.js';

const OPCODES = [
  CUSE_INIT,
  FUSE_OPEN,
  FUSE_READ,
  FUSE_WRITE,
  FUSE_IOCTL,
  FUSE_POLL,
  FUSE_RELEASE,
  FUSE_INTERRUPT,
];

/** Most inputs get a valid `len` and a known opcode, so the bodies are reached. */
function shape(data: Buffer): Buffer {
  const inp = new Input(data);
  const mode = inp.u8();
  const buf = Buffer.from(inp.rest());
  if (buf.length >= fuse_in_header.size && (mode & 1) === 0) buf.writeUInt32LE(buf.length, 0);
  if (buf.length >= 8 && (mode & 2) === 0) {
    buf.writeUInt32LE(OPCODES[(mode >> 2) % OPCODES.length]!, 4);
  }
  return buf;
}

function check(buf: Buffer, req: FuseRequest): void {
  assert.equal(req.h.len, buf.length);
  assert.equal(uniqueOf(buf), req.h.unique);
  let again: Buffer | undefined;
  switch (req.op) {
    case 'WRITE':
      again = K.writeRequest(req.h.unique, req.fh, req.data);
      assert.equal(again.length, buf.length);
      break;
    case 'IOCTL':
      assert.equal(req.data.length, req.inSize);
      again = K.ioctlRequest(req.h.unique, {
        fh: req.fh,
        cmd: req.cmd,
        arg: req.arg,
        flags: req.flags,
        outSize: req.outSize,
        data: req.data,
      });
      assert.equal(again.length, buf.length);
      break;
    case 'INTERRUPT':
      again = K.interruptRequest(req.h.unique, req.target);
      break;
    default:
      break;
  }
  if (again !== undefined) {
    // The unique and the op's own fields must have been read from where the kernel
    // puts them: the re-encoding decodes to the same values.
    const back = decodeRequest(again);
    assert.equal(back.op, req.op);
    assert.equal(back.h.unique, req.h.unique);
    if (back.op === 'WRITE' && req.op === 'WRITE') {
      assert.deepEqual(back.data, req.data);
      assert.equal(back.fh, req.fh);
    }
    if (back.op === 'IOCTL' && req.op === 'IOCTL') {
      assert.deepEqual(
        [back.cmd, back.arg, back.fh, back.flags, back.outSize, back.inSize],
        [req.cmd, req.arg, req.fh, req.flags, req.outSize, req.inSize],
      );
      assert.deepEqual(back.data, req.data);
    }
    if (back.op === 'INTERRUPT' && req.op === 'INTERRUPT') assert.equal(back.target, req.target);
  }
}

export function fuzz(data: Buffer): void {
  const buf = shape(data);
  const req = only('decodeRequest', () => decodeRequest(buf), FuseCodecError);
  if (req === undefined) return;
  check(buf, req);
}
