import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  StateBlobError,
  checkBlobHeader,
  decodeStateFile,
  parseKeyFile,
} from '../../src/protocol/state/index.js';
import { DirBackend } from '../../src/storage/dir.js';
import { StorageError } from '../../src/storage/errors.js';
import { LinearFileBackend } from '../../src/storage/file.js';
import { MemoryBackend } from '../../src/storage/memory.js';
import { StateStore } from '../../src/storage/state-store.js';
import { formatPrintStates, openBackend, parseTpmstate } from '../../src/storage/uri.js';
import { FIXTURES, fixture } from '../fixtures/state/harness.js';

const k128 = parseKeyFile(fixture('key128.hex'), 'hex', 'aes-128-cbc');
const k256 = parseKeyFile(fixture('key256.hex'), 'hex', 'aes-256-cbc');
const raw = decodeStateFile(fixture('plain.permall')).plain;

describe('StateStore', () => {
  it('stores encoded files and loads plain blobs', () => {
    const backend = new MemoryBackend();
    const plain = new StateStore(backend, '2.0');
    assert.equal(plain.load('permall'), undefined);
    plain.store('permall', raw);
    assert.deepEqual(backend.read('2.0', 'permall'), fixture('plain.permall'));
    assert.deepEqual(plain.load('permall'), raw);
    const keyed = new StateStore(new MemoryBackend(), '2.0', { fileKey: k256 });
    keyed.store('volatilestate', raw);
    assert.equal(checkBlobHeader(keyed.backend.read('2.0', 'volatilestate') ?? raw).flags, 0x09);
    assert.deepEqual(keyed.load('volatilestate'), raw);
    assert.equal(keyed.delete('volatilestate'), true);
    assert.equal(keyed.delete('volatilestate'), false);
    assert.equal(keyed.hasFileKey, true);
    assert.equal(keyed.hasMigrationKey, false);
  });

  it('names the file and the reason when a state file cannot be decoded', () => {
    const backend = new MemoryBackend();
    const aes = fixture('aes128.permall');
    backend.write('2.0', 'permall', aes);
    const wrong = new StateStore(backend, '2.0', {
      fileKey: parseKeyFile(fixture('key128.bin'), 'binary', 'aes-128-cbc'),
    });
    assert.throws(
      () => wrong.load('permall'),
      (e: unknown) =>
        e instanceof StorageError &&
        e.code === 'CORRUPT_STATE' &&
        e.result === 0x21 &&
        e.cause instanceof StateBlobError &&
        /tpm2-00\.permall in memory:\/\/: .*HMAC/.test(e.message),
    );
    // A truncated file: swtpm 0.7.1's load callback hands libtpms TPM_FAIL (SET_STATEBLOB
    // of the same bytes answers 0x03).
    backend.write('2.0', 'permall', aes.subarray(0, 700));
    assert.throws(() => new StateStore(backend, '2.0', { fileKey: k128 }).load('permall'), {
      code: 'CORRUPT_STATE',
      result: 0x09,
    });
    // the stored bytes are untouched by a failed load
    assert.deepEqual(backend.read('2.0', 'permall'), aes.subarray(0, 700));
  });

  it('builds GET_STATEBLOB payloads and unwraps SET_STATEBLOB payloads', () => {
    const src = new StateStore(new MemoryBackend(), '2.0', { fileKey: k128, migrationKey: k256 });
    assert.equal(src.getMigrationBlob('permall', { decrypted: false }), undefined);
    src.store('permall', raw);
    const enc = src.getMigrationBlob('permall', { decrypted: false });
    assert.ok(enc);
    assert.equal(enc.encrypted, true);
    assert.equal(checkBlobHeader(enc.blob).flags, 0x17);
    const dec = src.getMigrationBlob('permall', { decrypted: true });
    assert.equal(dec?.encrypted, false);
    assert.equal(checkBlobHeader(dec?.blob ?? raw).flags, 0x16);
    const dst = new StateStore(new MemoryBackend(), '2.0', { fileKey: k128, migrationKey: k256 });
    assert.deepEqual(dst.decodeIncomingBlob('permall', enc.blob, { encrypted: true }), raw);
    assert.deepEqual(
      dst.decodeIncomingBlob('permall', dec?.blob ?? raw, { encrypted: false }),
      raw,
    );
    assert.equal(
      dst.decodeIncomingBlob('savestate', new Uint8Array(0), { encrypted: false }).length,
      0,
    );
  });

  it('checks the header before the blob type, like swtpm', () => {
    const s = new StateStore(new MemoryBackend(), '2.0');
    const blob = fixture('plain.mig-permanent.bin');
    assert.throws(
      () => s.decodeIncomingBlob(undefined, blob.subarray(0, 20), { encrypted: false }),
      {
        code: 'TOTLEN_MISMATCH',
        result: 0x03,
      },
    );
    assert.throws(() => s.decodeIncomingBlob(undefined, blob, { encrypted: false }), {
      code: 'UNKNOWN_TYPE',
      result: 0x03,
    });
    assert.throws(() => s.decodeIncomingBlob(undefined, new Uint8Array(0), { encrypted: false }), {
      code: 'UNKNOWN_TYPE',
    });
  });

  it('lists stored states for --print-states in swtpm format', () => {
    const b = new DirBackend(`${FIXTURES}/missing-dir`);
    assert.equal(
      formatPrintStates(new StateStore(b, '2.0').listStates()),
      readFileSync(`${FIXTURES}print-states-empty.txt`, 'utf8'),
    );
    const m = new MemoryBackend();
    m.write('2.0', 'permall', new Uint8Array(1315));
    m.write('2.0', 'volatilestate', new Uint8Array(8986));
    assert.equal(
      formatPrintStates(new StateStore(m, '2.0').listStates()),
      readFileSync(`${FIXTURES}print-states.txt`, 'utf8'),
    );
  });
});

describe('MemoryBackend', () => {
  it('backends on one disk share files and contend for the lock', () => {
    const disk = MemoryBackend.disk();
    const a = new MemoryBackend(disk);
    const b = new MemoryBackend(disk);
    a.write('1.2', 'permall', new Uint8Array([1]));
    assert.deepEqual(b.read('1.2', 'permall'), new Uint8Array([1]));
    assert.equal(a.lock(0), true);
    assert.equal(b.lock(5), false);
    a.close();
    assert.equal(b.lock(0), true);
    assert.equal(b.locked, true);
  });
});

describe('--tpmstate parsing', () => {
  const env = {};
  it('parses dir= and backend-uri= with their options', () => {
    assert.deepEqual(parseTpmstate('dir=/var/lib/tpm', env), {
      kind: 'dir',
      path: '/var/lib/tpm',
      lock: true,
      backup: false,
      fsync: false,
    });
    assert.deepEqual(
      parseTpmstate('backend-uri=dir:///x,mode=0600,lock=false,backup,fsync=1', env),
      {
        kind: 'dir',
        path: '/x',
        mode: 0o600,
        lock: false,
        backup: true,
        fsync: true,
      },
    );
    assert.deepEqual(parseTpmstate('backend-uri=file:///dev/vdb,lock', env), {
      kind: 'file',
      path: '/dev/vdb',
      lock: true,
    });
    assert.deepEqual(parseTpmstate('backend-uri=file://state.img', env), {
      kind: 'file',
      path: 'state.img',
      lock: false,
    });
  });

  it('falls back to TPM_PATH', () => {
    assert.equal(parseTpmstate(undefined, { TPM_PATH: '/t' }).path, '/t');
    assert.throws(() => parseTpmstate(undefined, {}), { code: 'NO_STATE_PATH' });
  });

  it('rejects bad options', () => {
    for (const bad of [
      'dir=/x,foo=1',
      'dir=/x,mode=0800',
      'dir=/x,mode=01000',
      'dir=/x,mode=abc',
      'mode=0600',
      'dir=/x,backend-uri=dir:///y',
      'backend-uri=http://x',
      'backend-uri=file://',
      'backend-uri=file:///f,backup',
      'backend-uri=file:///f,fsync',
    ]) {
      assert.throws(() => parseTpmstate(bad, env), { code: 'BAD_OPTIONS' }, bad);
    }
    assert.throws(() => parseTpmstate('dir=/x,foo', env), /Unknown option 'foo'/);
  });

  it('opens the matching backend', () => {
    assert.ok(openBackend(parseTpmstate('dir=/x', env)) instanceof DirBackend);
    const f = openBackend(parseTpmstate('backend-uri=file:///nonexistent/f', env));
    assert.ok(f instanceof LinearFileBackend);
    assert.equal(f.uri, 'file:///nonexistent/f');
  });
});
