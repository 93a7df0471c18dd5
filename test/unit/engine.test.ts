// Engine against the real libtpms 0.9.2 (no mocks). The tests share one Engine, one copy
// of libtpms, and run in order; each group leaves the engine stopped.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { Engine, EngineError, type NvStore, type StateName } from '../../src/engine/index.js';

class MemStore implements NvStore {
  readonly blobs = new Map<StateName, Uint8Array>();
  readonly log: string[] = [];
  load(name: StateName): Uint8Array | undefined {
    this.log.push(`load ${name}`);
    return this.blobs.get(name);
  }
  store(name: StateName, data: Uint8Array): void {
    this.log.push(`store ${name} ${data.length}`);
    this.blobs.set(name, data);
  }
  delete(name: StateName): boolean {
    this.log.push(`delete ${name}`);
    return this.blobs.delete(name);
  }
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
/** TPM 2 command: tag, size (filled in), command code, body. */
function cmd2(tag: number, cc: number, ...body: Buffer[]): Buffer {
  const rest = Buffer.concat(body);
  return Buffer.concat([u16(tag), u32(10 + rest.length), u32(cc), rest]);
}
const ST_NO_SESSIONS = 0x8001;
const ST_SESSIONS = 0x8002;
// Authorization area with one empty password session: TPM_RS_PW, nonce 0, attrs 0, hmac 0.
const PW_SESSION = Buffer.concat([u32(9), u32(0x40000009), u16(0), Buffer.from([0]), u16(0)]);
const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const rc = (rsp: Uint8Array) => Buffer.from(rsp).readUInt32BE(6);

const STARTUP_CLEAR = cmd2(ST_NO_SESSIONS, 0x144, u16(0x0000));
const GET_RANDOM_16 = cmd2(ST_NO_SESSIONS, 0x17b, u16(16));
function pcrExtend(pcr: number, digest: Buffer): Buffer {
  return cmd2(ST_SESSIONS, 0x182, u32(pcr), PW_SESSION, u32(1), u16(0x000b), digest);
}
function pcrRead(pcr: number): Buffer {
  const select = Buffer.alloc(3);
  select[pcr >> 3] = 1 << (pcr & 7);
  return cmd2(ST_NO_SESSIONS, 0x17e, u32(1), u16(0x000b), Buffer.from([3]), select);
}
/** PCR_Read response: header 10, updateCounter 4, selection 10, count 4, size 2 → digest. */
function pcrValue(e: Engine, pcr: number): Buffer {
  const rsp = Buffer.from(e.execute(pcrRead(pcr)) as Uint8Array);
  assert.equal(rc(rsp), 0);
  return rsp.subarray(30, 62);
}
/** CreatePrimary(owner) of an RSA storage key; `unique` varies the derived key. */
function createPrimaryRsa(bits: number, unique = Buffer.alloc(0)): Buffer {
  const publicArea = Buffer.concat([
    u16(0x0001), // TPM_ALG_RSA
    u16(0x000b), // nameAlg SHA256
    u32(0x00030072), // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|decrypt
    u16(0), // authPolicy
    u16(0x0006), // symmetric AES
    u16(128),
    u16(0x0043), // CFB
    u16(0x0010), // scheme TPM_ALG_NULL
    u16(bits),
    u32(0), // exponent (default 65537)
    u16(unique.length),
    unique,
  ]);
  return cmd2(
    ST_SESSIONS,
    0x131,
    u32(0x40000001), // TPM_RH_OWNER
    PW_SESSION,
    Buffer.concat([u16(4), u16(0), u16(0)]), // inSensitive: empty userAuth and data
    Buffer.concat([u16(publicArea.length), publicArea]),
    u16(0), // outsideInfo
    u32(0), // creationPCR: no selection
  );
}
const flushContext = (handle: number) => cmd2(ST_NO_SESSIONS, 0x165, u32(handle));

const engine = Engine.open();
after(() => {
  if (!engine.busy) engine.close();
});

describe('Engine, TPM 2', () => {
  const store = new MemStore();

  test('start manufactures a TPM into the store', () => {
    engine.stop();
    engine.setStore(store);
    assert.equal(engine.libraryVersion >> 16, 0);
    assert.equal(engine.start('2.0'), 0);
    assert.equal(engine.running, true);
    assert.equal(engine.tpmVersion, '2.0');
    assert.ok(store.log.includes('load permall'));
    assert.ok((store.blobs.get('permall')?.length ?? 0) > 1000);
  });

  test('Startup(CLEAR) and GetRandom answer synchronously', () => {
    assert.deepEqual(
      [...(engine.execute(STARTUP_CLEAR) as Uint8Array)],
      [...u16(0x8001), ...u32(10), ...u32(0)],
    );
    const rsp = engine.execute(GET_RANDOM_16);
    assert.ok(rsp instanceof Uint8Array);
    assert.equal(rc(rsp), 0);
    assert.equal(rsp.length, 10 + 2 + 16);
    assert.equal(Buffer.from(rsp).readUInt16BE(10), 16);
    // A command inside a larger buffer (non-zero byteOffset) is passed correctly.
    const inner = Buffer.concat([Buffer.from('junk'), GET_RANDOM_16]).subarray(4);
    assert.equal(rc(engine.execute(inner) as Uint8Array), 0);
  });

  test('PCR_Extend with a password session, then PCR_Read', () => {
    const digest = sha256(Buffer.from('hello pcr16'));
    assert.equal(rc(engine.execute(pcrExtend(16, digest)) as Uint8Array), 0);
    assert.deepEqual(pcrValue(engine, 16), sha256(Buffer.alloc(32), digest));
  });

  test('_TPM_Hash sequence sets PCR 17 and the established bit', () => {
    const data = Buffer.from('dynamic root of trust');
    assert.deepEqual(engine.establishedGet(), { rc: 0, bit: 0 });
    assert.equal(engine.hashStart(), 0);
    assert.equal(engine.hashData(data), 0);
    assert.equal(engine.hashEnd(), 0);
    assert.deepEqual(pcrValue(engine, 17), sha256(Buffer.alloc(32), sha256(data)));
    assert.deepEqual(engine.establishedGet(), { rc: 0, bit: 1 });
  });

  test('established bit reset needs locality 3', () => {
    engine.locality = 0;
    assert.equal(engine.establishedReset(), 0x3d); // TPM_BAD_LOCALITY
    engine.locality = 3;
    assert.equal(engine.establishedReset(), 0);
    engine.locality = 0;
    assert.deepEqual(engine.establishedGet(), { rc: 0, bit: 0 });
  });

  test('commands see the locality each time it changes (PCR 21 extends at locality 2 only)', () => {
    // At locality 0 libtpms runs without the locality callback (engine.ts): every
    // change must still reach the next command, in both directions.
    const digest = sha256(Buffer.from('locality'));
    const TPM_RC_LOCALITY = 0x907;
    for (const [loc, want] of [
      [0, TPM_RC_LOCALITY],
      [2, 0],
      [0, TPM_RC_LOCALITY],
      [3, TPM_RC_LOCALITY],
      [2, 0],
    ] as const) {
      engine.locality = loc;
      assert.equal(
        rc(engine.execute(pcrExtend(21, digest)) as Uint8Array),
        want,
        `locality ${loc}`,
      );
    }
    engine.locality = 0;
  });

  test('volatile state + SetState keep PCRs across stop/start', () => {
    const pcr16 = pcrValue(engine, 16);
    const perm = engine.getState(1);
    const vol = engine.volatileAllStore();
    assert.equal(perm.rc, 0);
    assert.equal(vol.rc, 0);
    assert.ok(vol.data.length > 1000);
    assert.equal(engine.setState(1, perm.data), 0x26); // TPM_INVALID_POSTINIT while running
    engine.stop();
    assert.equal(engine.running, false);
    const fresh = new MemStore();
    engine.setStore(fresh);
    assert.equal(engine.setState(1, perm.data), 0);
    assert.equal(engine.setState(2, vol.data), 0);
    assert.equal(engine.start('2.0'), 0);
    assert.deepEqual(pcrValue(engine, 16), pcr16);
    assert.equal(rc(engine.execute(STARTUP_CLEAR) as Uint8Array), 0x100); // TPM_RC_INITIALIZE
  });

  test('GetInfo, SetBufferSize, GetTPMProperty', () => {
    const info = JSON.parse(engine.getInfo(1n) ?? 'null');
    assert.equal(info.TPMSpecification.family, '2.0');
    assert.deepEqual(engine.setBufferSize(0), { rc: 0, size: 4096, min: 2808, max: 4096 });
    assert.deepEqual(engine.getTpmProperty(1), { rc: 0, value: 3072 });
    assert.equal(engine.wasManufactured(), engine.libraryVersion >= 0xa00 ? false : undefined);
  });

  test('RSA-2048 CreatePrimary runs async; the engine is busy meanwhile', async () => {
    const pending = engine.execute(createPrimaryRsa(2048));
    assert.ok(pending instanceof Promise);
    assert.equal(engine.busy, true);
    assert.throws(
      () => engine.execute(GET_RANDOM_16),
      (e: unknown) => {
        return e instanceof EngineError && e.code === 'ENGINE_BUSY';
      },
    );
    assert.throws(() => engine.getState(1), { code: 'ENGINE_BUSY' });
    const idle = engine.whenIdle();
    const rsp = Buffer.from(await pending);
    await idle;
    assert.equal(engine.busy, false);
    assert.equal(rc(rsp), 0);
    const handle = rsp.readUInt32BE(10);
    assert.equal(handle >>> 24, 0x80); // transient object
    assert.equal(rc(engine.execute(flushContext(handle)) as Uint8Array), 0);
  });

  test('cancel during RSA-3072 CreatePrimary answers TPM_RC_CANCELED, loop stays free', async (t) => {
    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const started = performance.now();
      const pending = engine.execute(
        createPrimaryRsa(3072, randomBytes(16)),
      ) as Promise<Uint8Array>;
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(engine.cancel(), 0);
      const rsp = Buffer.from(await pending);
      clearInterval(timer);
      const ms = Math.round(performance.now() - started);
      outcomes.push(`rc=0x${rc(rsp).toString(16)} ${ms}ms ticks=${ticks}`);
      if (rc(rsp) === 0x909) {
        t.diagnostic(outcomes.join('; '));
        assert.ok(ticks > 0, 'event loop ticked during the async command');
        return;
      }
      assert.equal(rc(rsp), 0); // key found before the cancel was seen
      engine.execute(flushContext(rsp.readUInt32BE(10)));
    }
    assert.fail(`no attempt was canceled: ${outcomes.join('; ')}`);
  });

  test('a store whose load throws makes MainInit fail and reports the error', () => {
    engine.stop();
    const boom = new Error('disk on fire');
    engine.setStore({
      load() {
        throw boom;
      },
      store() {},
      delete: () => false,
    });
    assert.notEqual(engine.start('2.0'), 0);
    assert.equal(engine.running, false);
    assert.equal(engine.lastCallbackError, boom);
  });

  test('a store whose store throws makes manufacture fail', () => {
    const boom = new Error('read-only');
    engine.setStore({
      load: () => undefined,
      store() {
        throw boom;
      },
      delete: () => false,
    });
    assert.notEqual(engine.start('2.0'), 0);
    assert.equal(engine.running, false);
    assert.equal(engine.lastCallbackError, boom);
    // The failed MainInit must not leave the version choice locked.
    engine.setStore(new MemStore());
    assert.equal(engine.start('2.0'), 0);
    assert.equal(engine.lastCallbackError, undefined);
    engine.stop();
  });

  test('methods needing a running TPM throw ENGINE_NOT_RUNNING when stopped', () => {
    assert.throws(() => engine.execute(GET_RANDOM_16), { code: 'ENGINE_NOT_RUNNING' });
    assert.throws(() => engine.hashStart(), { code: 'ENGINE_NOT_RUNNING' });
  });
});

describe('Engine, TPM 1.2', () => {
  test('start, TPM_Startup(ST_CLEAR), GetRandom(8)', () => {
    engine.stop();
    const store = new MemStore();
    engine.setStore(store);
    assert.equal(engine.start('1.2'), 0);
    assert.ok(store.blobs.has('permall'));
    const startup = Buffer.concat([u16(0x00c1), u32(12), u32(0x99), u16(0x0001)]);
    assert.deepEqual(
      Buffer.from(engine.execute(startup) as Uint8Array),
      Buffer.concat([u16(0x00c4), u32(10), u32(0)]),
    );
    const getRandom = Buffer.concat([u16(0x00c1), u32(14), u32(0x46), u32(8)]);
    const rsp = Buffer.from(engine.execute(getRandom) as Uint8Array);
    assert.equal(rsp.readUInt16BE(0), 0x00c4);
    assert.equal(rc(rsp), 0);
    assert.equal(rsp.readUInt32BE(10), 8);
    assert.equal(rsp.length, 22);
    engine.stop();
  });
});
