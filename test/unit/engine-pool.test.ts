// The copies of libtpms against the real libtpms 0.9.2: the first engine runs on the
// normally loaded library, further ones on private memfd copies, and a copy given
// back is handed out again without anything of the TPM that used it before.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadLibtpmsCopy } from '../../src/engine/copies.js';
import {
  Engine,
  EngineError,
  type NvStore,
  type StateName,
  enginePoolStats,
} from '../../src/engine/index.js';
import { startup2 } from '../../src/protocol/tpm/commands.js';

class MemStore implements NvStore {
  readonly blobs = new Map<StateName, Uint8Array>();
  load(name: StateName): Uint8Array | undefined {
    return this.blobs.get(name);
  }
  store(name: StateName, data: Uint8Array): void {
    this.blobs.set(name, data);
  }
  delete(name: StateName): boolean {
    return this.blobs.delete(name);
  }
}

const permall = (s: MemStore) => Buffer.from(s.blobs.get('permall') ?? []).toString('hex');

test('the first engine is the shared library, the next ones are copies, reused after close', () => {
  const a = Engine.open();
  const b = Engine.open();
  assert.equal(a.libraryPath, 'libtpms.so.0', 'the first TPM uses the normally loaded library');
  assert.match(b.libraryPath, /^\/proc\/self\/fd\/\d+$/);
  assert.deepEqual(enginePoolStats(), { held: 2, idle: 0 });
  const [sa, sb] = [new MemStore(), new MemStore()];
  a.setStore(sa);
  b.setStore(sb);
  assert.equal(a.start('2.0'), 0);
  // While A runs, B can still choose, start and manufacture: its globals are its own.
  assert.equal(b.start('2.0'), 0);
  assert.notEqual(permall(sa), permall(sb), 'two manufactured TPMs, two sets of seeds');
  assert.equal(Buffer.from(b.execute(startup2()) as Uint8Array).readUInt32BE(6), 0);
  b.close();
  assert.equal(b.running, false);
  assert.equal(b.store, undefined);
  assert.throws(
    () => b.start('2.0'),
    (e) => e instanceof EngineError && e.code === 'ENGINE_CLOSED',
  );
  assert.equal(b.cancel(), 0, 'a closed engine never reaches the copy it gave back');
  const c = Engine.open();
  assert.equal(c.libraryPath, b.libraryPath, 'a copy given back is handed out again');
  assert.deepEqual(enginePoolStats(), { held: 2, idle: 0 });
  // The copy's callbacks reach the new engine's store, not the old one's.
  const sc = new MemStore();
  c.setStore(sc);
  assert.equal(c.start('2.0'), 0);
  assert.ok(sc.blobs.has('permall'));
  assert.notEqual(permall(sc), permall(sb));
  c.close();
  a.close();
  a.close();
  assert.deepEqual(enginePoolStats(), { held: 0, idle: 2 });
});

test('a blob cached by SetState does not outlive the TPM that set it', () => {
  const first = Engine.open();
  const donor = new MemStore();
  first.setStore(donor);
  assert.equal(first.start('2.0'), 0);
  first.stop();
  const seeds = donor.blobs.get('permall')!;
  // The TPM that gets released next had a permanent blob cached (SET_STATEBLOB while
  // stopped) and never started it.
  const e = Engine.open();
  assert.equal(e.choose('2.0'), 0);
  assert.equal(e.setState(1, seeds), 0);
  e.close();
  first.close();
  // Whoever gets that copy with an empty state manufactures a new TPM.
  const engines = [Engine.open(), Engine.open()];
  const stores = engines.map(() => new MemStore());
  for (const [i, x] of engines.entries()) {
    x.setStore(stores[i]);
    assert.equal(x.start('2.0'), 0);
  }
  for (const s of stores) assert.notEqual(permall(s), Buffer.from(seeds).toString('hex'));
  for (const x of engines) x.close();
});

test('a libtpms binding declares each function on its first use, once', () => {
  const lib = loadLibtpmsCopy();
  const declared = (name: keyof typeof lib) =>
    Object.getOwnPropertyDescriptor(lib, name)?.get === undefined;
  assert.equal(declared('DecodeBlob'), false);
  assert.equal(declared('GetVersion'), false);
  const v = lib.GetVersion;
  assert.equal(declared('GetVersion'), true);
  assert.equal(lib.GetVersion, v); // the same koffi function, not declared again
  assert.ok(v() >= 0x000902, `libtpms ${v().toString(16)}`);
  assert.equal(declared('DecodeBlob'), false); // untouched ones stay undeclared
  assert.ok(Object.keys(lib).includes('Process')); // and still enumerable
});
