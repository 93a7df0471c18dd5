// The client library's CUSE device transport (deviceRequest/deviceTransmit) against our
// CUSE server through the fake kernel of cuse-helpers.ts; the real kernel and a real
// /dev/vtpm2 are exercised by test/interop/cuse-guest.test.ts (client-device.ts).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { type CuseDevice, deviceRequest, deviceTransmit } from '../../src/client/device.js';
import type { Device } from '../../src/device/device.js';
import {
  type CtrlRequest,
  PTM_BLOB_TYPE_VOLATILE,
  PTM_STATE_FLAG_DECRYPTED,
} from '../../src/protocol/ctrl/index.js';
import * as K from '../../src/protocol/fuse/kernel-side.js';
import { FakeKernel, makeDevice } from './cuse-helpers.js';

let dev: Device;
let k: FakeKernel;
let fh: bigint;
/** Every ioctl as sent: command, and the data length for blob/hash chunks. */
const calls: string[] = [];
let fake: Pick<CuseDevice, 'ioctl' | 'read' | 'write'>;

before(async () => {
  dev = makeDevice();
  k = new FakeKernel(dev);
  await k.init();
  fh = await k.open();
  fake = {
    async ioctl(req: CtrlRequest) {
      calls.push('length' in req ? `${req.cmd} ${req.length}` : req.cmd);
      const { raw: _raw, ...rsp } = await k.ptm(fh, req);
      return rsp;
    },
    async read(max: number) {
      const r = await k.read(fh, max);
      assert.equal(r.error, 0);
      return r.payload;
    },
    async write(data: Uint8Array) {
      const r = await k.write(fh, data);
      assert.equal(r.error, 0);
      return K.parseWriteReply(r.payload);
    },
  };
});
after(async () => {
  k.close();
  await dev.close();
});

const hex = (s: string) => Buffer.from(s, 'hex');
const PCR_READ_16 = hex('8001000000140000017e00000001000b03000001');
const DIGEST = createHash('sha256').update('x').digest();
const PCR_EXTEND_16 = Buffer.concat([
  hex('80020000004100000182'),
  hex('00000010'),
  hex('00000009400000090000000000'),
  hex('00000001000b'),
  DIGEST,
]);
const rc = (b: Buffer) => b.readUInt32BE(6);

test('TPM commands by write() and read(): Startup, PCR_Extend, PCR_Read', async () => {
  assert.equal((await deviceRequest(fake, { cmd: 'INIT', initFlags: 0 }, undefined)).result, 0);
  assert.equal(rc(await deviceTransmit(fake, hex('80010000000c000001440000'), undefined)), 0);
  assert.equal(rc(await deviceTransmit(fake, PCR_EXTEND_16, undefined)), 0);
  const rsp = await deviceTransmit(fake, PCR_READ_16, undefined);
  assert.equal(rc(rsp), 0);
  assert.equal(rsp.length, rsp.readUInt32BE(2));
  const want = createHash('sha256').update(Buffer.alloc(32)).update(DIGEST).digest();
  assert.deepEqual(rsp.subarray(30, 62), want);
});

test('GET_STATEBLOB gathers the blob in 3072-byte ioctls; SET_STATEBLOB chunks it back', async () => {
  calls.length = 0;
  const get = { cmd: 'GET_STATEBLOB', stateFlags: PTM_STATE_FLAG_DECRYPTED } as const;
  const vol = await deviceRequest(
    fake,
    { ...get, type: PTM_BLOB_TYPE_VOLATILE, offset: 0 },
    undefined,
  );
  assert.equal(vol.result, 0);
  const n = vol.data!.length;
  assert.equal(vol.totLength, n);
  assert.equal(vol.length, n);
  assert.ok(n > 2 * 3072, `${n} bytes`);
  assert.equal(calls.length, Math.ceil(n / 3072));

  // Stop, then the same blob in chunks of 3072 with a short last one.
  assert.equal((await deviceRequest(fake, { cmd: 'STOP' }, undefined)).result, 0);
  calls.length = 0;
  const set = { cmd: 'SET_STATEBLOB', stateFlags: 0, type: PTM_BLOB_TYPE_VOLATILE } as const;
  const r = await deviceRequest(fake, { ...set, length: n, data: vol.data! }, undefined);
  assert.equal(r.result, 0);
  const last = n % 3072;
  assert.deepEqual(calls, [
    ...Array.from({ length: Math.floor(n / 3072) }, () => 'SET_STATEBLOB 3072'),
    `SET_STATEBLOB ${last}`,
  ]);
  assert.equal((await deviceRequest(fake, { cmd: 'INIT', initFlags: 0 }, undefined)).result, 0);
  const rsp = await deviceTransmit(fake, PCR_READ_16, undefined);
  const want = createHash('sha256').update(Buffer.alloc(32)).update(DIGEST).digest();
  assert.deepEqual(rsp.subarray(30, 62), want); // the volatile state came back
});

test('a blob of a multiple of 3072 bytes ends with an empty chunk; an empty one is sent twice', async () => {
  calls.length = 0;
  const set = { cmd: 'SET_STATEBLOB', stateFlags: 0, type: PTM_BLOB_TYPE_VOLATILE } as const;
  // The TPM is running: the first chunk is refused, and nothing more is sent.
  const data = Buffer.alloc(6144);
  const r = await deviceRequest(fake, { ...set, length: data.length, data }, undefined);
  assert.notEqual(r.result, 0);
  assert.deepEqual(calls, ['SET_STATEBLOB 3072']); // the first non-zero result ends it

  // Recorded sequences, independent of the server's answers.
  const seen: string[] = [];
  const ok = {
    ioctl: async (req: CtrlRequest) => {
      seen.push('length' in req ? `${req.cmd} ${req.length}` : req.cmd);
      return { result: 0 };
    },
  };
  await deviceRequest(ok, { ...set, length: 6144, data }, undefined);
  assert.deepEqual(seen, ['SET_STATEBLOB 3072', 'SET_STATEBLOB 3072', 'SET_STATEBLOB 0']);
  seen.length = 0;
  await deviceRequest(ok, { ...set, length: 0, data: Buffer.alloc(0) }, undefined);
  assert.deepEqual(seen, ['SET_STATEBLOB 0', 'SET_STATEBLOB 0']);
  seen.length = 0;
  const h = Buffer.alloc(5000);
  await deviceRequest(ok, { cmd: 'HASH_DATA', length: h.length, data: h }, undefined);
  assert.deepEqual(seen, ['HASH_DATA 4096', 'HASH_DATA 904']);
});

test('a deadline that passes rejects while the call goes on', async () => {
  const slow = { ioctl: () => new Promise<never>(() => {}) };
  await assert.rejects(
    deviceRequest(slow, { cmd: 'GET_CAPABILITY' }, Date.now() + 20),
    (e: Error) => e.constructor.name === 'DeadlineError',
  );
});
