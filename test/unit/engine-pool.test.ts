// The engine pool against the real libtpms 0.9.2: the first engine is the normally
// loaded library, further ones are private memfd copies, and a released copy is
// handed out again without anything of the TPM that used it before.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Engine,
  type NvStore,
  type StateName,
  acquireEngine,
  enginePoolStats,
  releaseEngine,
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

test('the first engine is the shared library, the next ones are copies, reused after release', () => {
  const a = acquireEngine();
  const b = acquireEngine();
  assert.equal(a, Engine.get(), 'the first TPM uses the normally loaded library');
  assert.notEqual(b, a);
  assert.deepEqual(enginePoolStats(), { held: 2, idle: 0 });
  const [sa, sb] = [new MemStore(), new MemStore()];
  a.setStore(sa);
  b.setStore(sb);
  assert.equal(a.start('2.0'), 0);
  // While A runs, B can still choose, start and manufacture: its globals are its own.
  assert.equal(b.start('2.0'), 0);
  assert.notEqual(permall(sa), permall(sb), 'two manufactured TPMs, two sets of seeds');
  assert.equal(Buffer.from(b.execute(startup2()) as Uint8Array).readUInt32BE(6), 0);
  releaseEngine(b);
  assert.equal(b.running, false);
  assert.equal(b.store, undefined);
  assert.equal(acquireEngine(), b, 'a released copy is handed out again');
  assert.deepEqual(enginePoolStats(), { held: 2, idle: 0 });
  releaseEngine(b);
  releaseEngine(a);
  assert.deepEqual(enginePoolStats(), { held: 0, idle: 2 });
});

test('a blob cached by SetState does not outlive the TPM that set it', () => {
  const first = acquireEngine();
  const donor = new MemStore();
  first.setStore(donor);
  assert.equal(first.start('2.0'), 0);
  first.stop();
  const seeds = donor.blobs.get('permall')!;
  // The TPM that gets released next had a permanent blob cached (SET_STATEBLOB while
  // stopped) and never started it.
  const e = acquireEngine();
  assert.equal(e.choose('2.0'), 0);
  assert.equal(e.setState(1, seeds), 0);
  releaseEngine(e);
  releaseEngine(first);
  // Whoever gets that copy with an empty state manufactures a new TPM.
  const engines = [acquireEngine(), acquireEngine()];
  const stores = engines.map(() => new MemStore());
  for (const [i, x] of engines.entries()) {
    x.setStore(stores[i]);
    assert.equal(x.start('2.0'), 0);
  }
  for (const s of stores) assert.notEqual(permall(s), Buffer.from(seeds).toString('hex'));
  for (const x of engines) releaseEngine(x);
});
