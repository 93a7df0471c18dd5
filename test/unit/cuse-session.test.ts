// The CUSE front end driven through a socketpair that plays the kernel's side of the
// FUSE protocol (the real kernel is exercised by test/interop/cuse-guest.test.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Device } from '../../src/device/device.js';
import {
  PTM_BLOB_TYPE_PERMANENT,
  PTM_BLOB_TYPE_VOLATILE,
  PTM_STATE_BLOB_SIZE,
  defByName,
  ioctlNumber,
} from '../../src/protocol/ctrl/index.js';
import { FUSE_IOCTL_COMPAT, FUSE_IOCTL_UNRESTRICTED } from '../../src/protocol/fuse/index.js';
import * as K from '../../src/protocol/fuse/kernel-side.js';
import {
  TPM_BAD_LOCALITY,
  TPM_BAD_ORDINAL,
  TPM_BAD_PARAMETER,
  TPM_FAIL,
} from '../../src/protocol/tpm/results.js';
import {
  CAPS_CUSE,
  EBUSY,
  EINTR,
  EINVAL,
  EIO,
  ENOSYS,
  FakeKernel,
  hex,
  makeDevice,
  memoryStorage,
} from './cuse-helpers.js';

const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
function cmd2(tag: number, cc: number, ...body: Buffer[]): Buffer {
  const rest = Buffer.concat(body);
  return Buffer.concat([u16(tag), u32(10 + rest.length), u32(cc), rest]);
}
const PW_SESSION = Buffer.concat([u32(9), u32(0x40000009), u16(0), Buffer.from([0]), u16(0)]);
const STARTUP_CLEAR = cmd2(0x8001, 0x144, u16(0));
const GET_RANDOM_8 = cmd2(0x8001, 0x17b, u16(8));
function createPrimaryRsa(bits: number): Buffer {
  const unique = randomBytes(16);
  const pub = Buffer.concat([
    u16(0x0001),
    u16(0x000b),
    u32(0x00030072),
    u16(0),
    u16(0x0006),
    u16(128),
    u16(0x0043),
    u16(0x0010),
    u16(bits),
    u32(0),
    u16(unique.length),
    unique,
  ]);
  return cmd2(
    0x8002,
    0x131,
    u32(0x40000001),
    PW_SESSION,
    Buffer.concat([u16(4), u16(0), u16(0)]),
    Buffer.concat([u16(pub.length), pub]),
    u16(0),
    u32(0),
  );
}
const rc = (rsp: Uint8Array) => Buffer.from(rsp).readUInt32BE(6);

let storage: ReturnType<typeof memoryStorage>;
let dev: Device;
let k: FakeKernel;
let fh: bigint;
let inits = 0;

before(async () => {
  storage = memoryStorage();
  dev = makeDevice(storage);
  k = new FakeKernel(dev, { devMajor: 10, devMinor: 224, onInit: () => inits++ });
});
after(async () => {
  k.close();
  await dev.close();
});

/** One TPM command through write() + read(); returns the response. */
async function tpm(cmd: Buffer): Promise<Buffer> {
  const w = await k.write(fh, cmd);
  assert.equal(w.error, 0);
  assert.equal(K.parseWriteReply(w.payload), cmd.length);
  const r = await k.read(fh, 4096);
  assert.equal(r.error, 0);
  return r.payload;
}

describe('CUSE session', () => {
  test('CUSE_INIT: restricted ioctls, DEVNAME and the device numbers', async () => {
    const r = await k.init();
    assert.equal(r.error, 0);
    assert.equal(r.len, 16 + 72 + 'DEVNAME=vtpm0\0'.length);
    const { out, info } = K.parseInitReply(r.payload);
    assert.equal(out.major, 7);
    assert.equal(out.minor, 38);
    assert.equal(out.flags, 0);
    assert.equal(out.max_read, 65536);
    assert.equal(out.max_write, 65536);
    assert.deepEqual([out.dev_major, out.dev_minor], [10, 224]);
    assert.deepEqual(info, ['DEVNAME=vtpm0']);
    assert.equal(inits, 1);
  });

  test('one opener at a time: a second OPEN is EBUSY until RELEASE', async () => {
    fh = await k.open();
    const second = await k.call((u) => K.openRequest(u));
    assert.equal(second.error, -EBUSY);
    const rel = await k.call((u) => K.releaseRequest(u, fh));
    assert.equal(rel.error, 0);
    assert.equal(rel.len, 16);
    fh = await k.open();
  });

  test('GET_CAPABILITY is a bare host-endian u64', async () => {
    const r = await k.ioctl(fh, defByName('GET_CAPABILITY'));
    const io = K.parseIoctlReply(r.payload);
    assert.equal(io.result, 0);
    assert.equal(io.data.length, 8);
    assert.equal(io.data.readBigUInt64LE(0), BigInt(CAPS_CUSE));
  });

  test('commands that need a running TPM answer TPM_BAD_ORDINAL in 4 bytes', async () => {
    const rsp = await k.ptm(fh, { cmd: 'GET_TPMESTABLISHED' });
    assert.equal(rsp.result, TPM_BAD_ORDINAL);
    assert.equal(rsp.raw.length, 4);
  });

  test('write() before INIT queues a TPM_RC_FAILURE response', async () => {
    const rsp = await tpm(GET_RANDOM_8);
    assert.equal(rc(rsp), 0x101);
  });

  test('INIT, then TPM commands through write() and read()', async () => {
    assert.equal((await k.ptm(fh, { cmd: 'INIT', initFlags: 0 })).result, 0);
    assert.equal(rc(await tpm(STARTUP_CLEAR)), 0);
    const rsp = await tpm(GET_RANDOM_8);
    assert.equal(rc(rsp), 0);
    assert.equal(rsp.length, 20);
  });

  test('a response can be read in pieces; then read() returns 0 bytes', async () => {
    const w = await k.write(fh, GET_RANDOM_8);
    assert.equal(w.error, 0);
    const head = await k.read(fh, 10);
    assert.equal(head.payload.length, 10);
    assert.equal(head.payload.readUInt32BE(2), 20);
    const rest = await k.read(fh, 4096);
    assert.equal(rest.payload.length, 10);
    const eof = await k.read(fh, 4096);
    assert.equal(eof.error, 0);
    assert.equal(eof.payload.length, 0);
  });

  test('a write() longer than 4096 bytes is truncated to one command', async () => {
    const big = Buffer.concat([GET_RANDOM_8, Buffer.alloc(5000)]);
    const w = await k.write(fh, big);
    assert.equal(K.parseWriteReply(w.payload), 4096);
    const r = await k.read(fh, 4096);
    assert.equal(r.payload.length, 10); // libtpms rejects the size mismatch
  });

  test('SET_LOCALITY and RESET_TPMESTABLISHED reject locality 5 with TPM_BAD_LOCALITY', async () => {
    assert.equal((await k.ptm(fh, { cmd: 'SET_LOCALITY', locality: 5 })).result, TPM_BAD_LOCALITY);
    assert.equal((await k.ptm(fh, { cmd: 'SET_LOCALITY', locality: 0 })).result, 0);
    // swtpm's CUSE never replies to this one (the caller hangs); we answer.
    const bad = await k.ptm(fh, { cmd: 'RESET_TPMESTABLISHED', locality: 5 });
    assert.equal(bad.result, TPM_BAD_LOCALITY);
    assert.equal((await k.ptm(fh, { cmd: 'RESET_TPMESTABLISHED', locality: 3 })).result, 0);
  });

  test('hashing: HASH_DATA over 4096 bytes is TPM_FAIL; the sequence sets the established bit', async () => {
    assert.equal((await k.ptm(fh, { cmd: 'HASH_START' })).result, 0);
    const data = Buffer.from('hello cuse');
    assert.equal((await k.ptm(fh, { cmd: 'HASH_DATA', length: data.length, data })).result, 0);
    const tooLong = await k.ptm(fh, { cmd: 'HASH_DATA', length: 4097, data: Buffer.alloc(0) });
    assert.equal(tooLong.result, TPM_FAIL);
    assert.equal((await k.ptm(fh, { cmd: 'HASH_END' })).result, 0);
    const est = await k.ptm(fh, { cmd: 'GET_TPMESTABLISHED' });
    assert.equal(est.result, 0);
    assert.equal(est.bit, 1);
    assert.equal(est.raw.length, 8);
  });

  test('GET_CONFIG, SET_BUFFERSIZE (query), GET_INFO, LOCK_STORAGE', async () => {
    const cfg = await k.ptm(fh, { cmd: 'GET_CONFIG' });
    assert.deepEqual([cfg.result, cfg.flags], [0, 0]);
    const bs = await k.ptm(fh, { cmd: 'SET_BUFFERSIZE', bufferSize: 0 });
    assert.equal(bs.result, 0);
    assert.ok((bs.bufferSize ?? 0) >= 4096);
    const info = await k.ptm(fh, { cmd: 'GET_INFO', flags: 1n, offset: 0 });
    assert.equal(info.result, 0);
    assert.match(Buffer.from(info.buffer!).toString(), /TPMSpecification/);
    assert.equal((await k.ptm(fh, { cmd: 'LOCK_STORAGE', retries: 0 })).result, 0);
  });

  test('unknown ioctls and SET_DATAFD are EINVAL, 32-bit callers ENOSYS, POLL ENOSYS', async () => {
    const unknown = await k.call((u) => K.ioctlRequest(u, { fh, cmd: 0x80045077, outSize: 4 }));
    assert.equal(unknown.error, -EINVAL);
    const datafd = await k.ioctl(fh, defByName('SET_DATAFD'));
    assert.equal(datafd.error, -EINVAL);
    const cap = ioctlNumber(defByName('GET_CAPABILITY'));
    const compat = await k.call((u) =>
      K.ioctlRequest(u, { fh, cmd: cap, outSize: 8, flags: FUSE_IOCTL_COMPAT }),
    );
    assert.equal(compat.error, -ENOSYS);
    const poll = await k.call((u) => K.pollRequest(u, fh));
    assert.equal(poll.error, -ENOSYS);
  });

  test('unrestricted ioctls get a RETRY with the iovecs from the ioctl number', async () => {
    const def = defByName('SET_LOCALITY');
    const r = await k.call((u) =>
      K.ioctlRequest(u, {
        fh,
        cmd: ioctlNumber(def),
        arg: 0x7fff1000n,
        outSize: 0,
        flags: FUSE_IOCTL_UNRESTRICTED,
      }),
    );
    const io = K.parseIoctlReply(r.payload);
    assert.equal(io.flags, 4);
    assert.deepEqual(io.iovs, [
      { base: 0x7fff1000n, len: 4n },
      { base: 0x7fff1000n, len: 4n },
    ]);
  });
});

describe('CUSE state blobs', () => {
  let permall: Buffer;
  let volatile: Buffer;

  test('GET_STATEBLOB in 3072-byte ioctl chunks by offset', async () => {
    const whole = await k.ptm(fh, {
      cmd: 'GET_STATEBLOB',
      stateFlags: 0,
      type: PTM_BLOB_TYPE_PERMANENT,
      offset: 0,
    });
    assert.equal(whole.result, 0);
    assert.ok(whole.totLength! < PTM_STATE_BLOB_SIZE);
    assert.equal(whole.length, whole.totLength);
    permall = Buffer.from(whole.data!);
    const parts: Buffer[] = [];
    let offset = 0;
    let total = -1;
    for (let i = 0; i < 10 && offset !== total; i++) {
      const r = await k.ptm(fh, {
        cmd: 'GET_STATEBLOB',
        stateFlags: 0,
        type: PTM_BLOB_TYPE_VOLATILE,
        offset,
      });
      assert.equal(r.result, 0);
      assert.equal(r.raw.length, 3088);
      assert.ok((r.length ?? 0) <= PTM_STATE_BLOB_SIZE);
      total = r.totLength!;
      parts.push(Buffer.from(r.data!));
      offset += r.length!;
    }
    assert.equal(Buffer.concat(parts).length, total);
    assert.ok(parts.length >= 3, `volatile state is ${total} bytes`);
    // Back in command mode: read() carries TPM responses again.
    assert.equal(rc(await tpm(GET_RANDOM_8)), 0);
  });

  test('GET_STATEBLOB then read() for the rest; write() in get mode is EIO', async () => {
    const first = await k.ptm(fh, {
      cmd: 'GET_STATEBLOB',
      stateFlags: 0,
      type: PTM_BLOB_TYPE_VOLATILE,
      offset: 0,
    });
    assert.equal(first.result, 0);
    assert.equal(first.length, PTM_STATE_BLOB_SIZE);
    const total = first.totLength!;
    const r1 = await k.read(fh, 1000);
    const r2 = await k.read(fh, 65536);
    volatile = Buffer.concat([Buffer.from(first.data!), r1.payload, r2.payload]);
    assert.equal(volatile.length, total);
    assert.equal(rc(await tpm(GET_RANDOM_8)), 0);

    await k.ptm(fh, {
      cmd: 'GET_STATEBLOB',
      stateFlags: 0,
      type: PTM_BLOB_TYPE_VOLATILE,
      offset: 0,
    });
    const w = await k.write(fh, GET_RANDOM_8);
    assert.equal(w.error, -EIO);
    assert.equal(rc(await tpm(GET_RANDOM_8)), 0); // back in command mode
  });

  test('SET_STATEBLOB needs a stopped TPM and chunks of at most 3072 bytes', async () => {
    const running = await k.ptm(fh, {
      cmd: 'SET_STATEBLOB',
      stateFlags: 0,
      type: PTM_BLOB_TYPE_PERMANENT,
      length: 0,
      data: Buffer.alloc(0),
    });
    assert.equal(running.result, TPM_BAD_ORDINAL);
    assert.equal((await k.ptm(fh, { cmd: 'STOP' })).result, 0);
    const def = defByName('SET_STATEBLOB');
    const arg = Buffer.alloc(def.size);
    arg.writeUInt32LE(PTM_BLOB_TYPE_PERMANENT, 4);
    arg.writeUInt32LE(3073, 8);
    const r = await k.ioctl(fh, def, arg);
    assert.equal(K.parseIoctlReply(r.payload).data.readUInt32LE(0), TPM_BAD_PARAMETER);
  });

  test('SET permanent in ioctl chunks, volatile through write(); INIT resumes the TPM', async () => {
    storage.files.clear();
    for (let off = 0; ; off += PTM_STATE_BLOB_SIZE) {
      const data = permall.subarray(off, off + PTM_STATE_BLOB_SIZE);
      const r = await k.ptm(fh, {
        cmd: 'SET_STATEBLOB',
        stateFlags: 0,
        type: PTM_BLOB_TYPE_PERMANENT,
        length: data.length,
        data,
      });
      assert.equal(r.result, 0);
      if (data.length < PTM_STATE_BLOB_SIZE) break;
    }
    const set = (length: number) =>
      k.ptm(fh, {
        cmd: 'SET_STATEBLOB',
        stateFlags: 0,
        type: PTM_BLOB_TYPE_VOLATILE,
        length,
        data: Buffer.alloc(0),
      });
    assert.equal((await set(0)).result, 0); // starts write() mode
    const half = volatile.length >> 1;
    for (const part of [volatile.subarray(0, half), volatile.subarray(half)]) {
      const w = await k.write(fh, part);
      assert.equal(K.parseWriteReply(w.payload), part.length);
    }
    assert.equal((await set(0)).result, 0); // commits
    assert.equal((await k.ptm(fh, { cmd: 'INIT', initFlags: 0 })).result, 0);
    // Resumed from the volatile state: no TPM2_Startup needed.
    assert.equal(rc(await tpm(GET_RANDOM_8)), 0);
    assert.equal(hex(storage.files.get('permall')!), hex(permall));
  });

  test('read() in set mode is EIO and ends the transfer', async () => {
    assert.equal((await k.ptm(fh, { cmd: 'STOP' })).result, 0);
    await k.ptm(fh, {
      cmd: 'SET_STATEBLOB',
      stateFlags: 0,
      type: PTM_BLOB_TYPE_VOLATILE,
      length: 0,
      data: Buffer.alloc(0),
    });
    const r = await k.read(fh, 100);
    assert.equal(r.error, -EIO);
    assert.equal((await k.ptm(fh, { cmd: 'INIT', initFlags: 0 })).result, 0);
    assert.equal(rc(await tpm(GET_RANDOM_8)), 0x100); // TPM_RC_INITIALIZE: no volatile state
    assert.equal(rc(await tpm(STARTUP_CLEAR)), 0);
  });
});

describe('CUSE long commands', () => {
  test('CreatePrimary runs in the background: EBUSY for a second write, read waits', async () => {
    const w = await k.write(fh, createPrimaryRsa(2048));
    assert.equal(w.error, 0);
    assert.equal(dev.busy, true);
    const busy = await k.write(fh, GET_RANDOM_8);
    assert.equal(busy.error, -EBUSY);
    // Answered at once while the command runs.
    const cap = K.parseIoctlReply((await k.ioctl(fh, defByName('GET_CAPABILITY'))).payload);
    assert.equal(cap.data.readBigUInt64LE(0), BigInt(CAPS_CUSE));
    const u = k.next();
    await k.send(K.readRequest(u, fh, 4096));
    const r = await k.recv(60_000);
    assert.equal(r.unique, u);
    assert.equal(rc(r.payload), 0);
    assert.ok(r.payload.length > 100);
  });

  test('CANCEL_TPM_CMD during a long command; an interrupted read gets EINTR', async () => {
    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      await k.write(fh, createPrimaryRsa(3072));
      const u = k.next();
      await k.send(K.readRequest(u, fh, 4096));
      await k.silent(5);
      await k.send(K.interruptRequest(k.next(), u));
      const intr = await k.recv();
      assert.deepEqual([intr.unique, intr.error], [u, -EINTR]);
      assert.equal((await k.ptm(fh, { cmd: 'CANCEL_TPM_CMD' })).result, 0);
      const r = await k.read(fh, 4096); // waits for the (canceled) command
      outcomes.push(`0x${rc(r.payload).toString(16)}`);
      if (rc(r.payload) === 0x909) return;
    }
    assert.fail(`no attempt was canceled: ${outcomes.join(' ')}`);
  });

  test('SHUTDOWN replies, stops the TPM and calls onShutdown', async () => {
    let called = false;
    dev.onShutdown = () => {
      called = true;
    };
    assert.equal((await k.ptm(fh, { cmd: 'SHUTDOWN' })).result, 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(called, true);
    assert.equal(dev.running, false);
  });
});
