// State files and GET/SET_STATEBLOB payloads exchanged with Debian's swtpm 0.7.1.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  checkBlobHeader,
  decodeMigrationBlob,
  decodeStateFile,
  deriveKeyFromPassword,
  encodeMigrationBlob,
  encodeStateFile,
  parseKeyFile,
} from '../../src/protocol/state/index.js';
import { DirBackend } from '../../src/storage/dir.js';
import { LinearFileBackend } from '../../src/storage/file.js';
import { StateStore } from '../../src/storage/state-store.js';
import {
  FIXTURES,
  type Swtpm,
  fixture,
  getStateBlob,
  haveSwtpm,
  startSwtpm,
} from '../fixtures/state/harness.js';

const root = mkdtempSync(join(tmpdir(), 'tswtpm-state-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function freshDir(): string {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  return d;
}

const PERMANENT = 1;
const DECRYPTED = 1;
const ENCRYPTED = 2;
const k128 = parseKeyFile(fixture('key128.hex'), 'hex', 'aes-128-cbc');
const k256 = parseKeyFile(fixture('key256.hex'), 'hex', 'aes-256-cbc');
const mk128 = parseKeyFile(fixture('migkey128.hex'), 'hex', 'aes-128-cbc');
const pwd = fixture('password.txt');
const permall = decodeStateFile(fixture('plain.permall')).plain;

const KEYS: { name: string; key?: Uint8Array; args: string[] }[] = [
  { name: 'no key', args: [] },
  { name: 'aes-128 hex key', key: k128, args: ['--key', `file=${FIXTURES}key128.hex`] },
  {
    name: 'aes-256 hex key',
    key: k256,
    args: ['--key', `file=${FIXTURES}key256.hex,mode=aes-256-cbc`],
  },
  {
    name: 'binary key',
    key: parseKeyFile(fixture('key128.bin'), 'binary', 'aes-128-cbc'),
    args: ['--key', `file=${FIXTURES}key128.bin,format=binary,mode=aes-cbc`],
  },
  {
    name: 'pbkdf2 password, aes-256',
    key: deriveKeyFromPassword(pwd, 'pbkdf2', 'aes-256-cbc'),
    args: ['--key', `pwdfile=${FIXTURES}password.txt,mode=aes-256-cbc`],
  },
  {
    name: 'sha512 password',
    key: deriveKeyFromPassword(pwd, 'sha512', 'aes-128-cbc'),
    args: ['--key', `pwdfile=${FIXTURES}password.txt,kdf=sha512`],
  },
];

async function withSwtpm<T>(args: string[], fn: (t: Swtpm) => Promise<T>): Promise<T> {
  const tpm = await startSwtpm(args);
  try {
    return await fn(tpm);
  } finally {
    tpm.ioctl('-s');
    await tpm.stop();
  }
}

/** INIT, then the plain permanent state as swtpm hands it out (DECRYPTED). */
async function initAndGetPermall(
  tpm: Swtpm,
  opts: { fileKey?: Uint8Array; migrationKey?: Uint8Array } = {},
) {
  const init = tpm.ioctl('-i');
  assert.equal(init.status, 0, `${init.out}\n${tpm.stderr()}`);
  const r = await getStateBlob(tpm.ctrlPort, PERMANENT, DECRYPTED);
  assert.equal(r.result, 0);
  assert.equal(r.stateFlags, 0);
  return decodeMigrationBlob(r.blob, opts);
}

describe('state files vs Debian swtpm', { skip: !haveSwtpm && 'swtpm not installed' }, () => {
  for (const k of KEYS) {
    it(`${k.name}: swtpm loads the file we encoded`, async () => {
      const dir = freshDir();
      new StateStore(new DirBackend(dir), '2.0', { fileKey: k.key }).store('permall', permall);
      const written = readFileSync(join(dir, 'tpm2-00.permall'));
      await withSwtpm(['--tpmstate', `dir=${dir}`, ...k.args], async (tpm) => {
        assert.deepEqual(await initAndGetPermall(tpm), permall);
      });
      // swtpm wrote nothing back; a plain file is byte-identical to swtpm's own
      assert.deepEqual(readFileSync(join(dir, 'tpm2-00.permall')), written);
      if (k.key === undefined) assert.deepEqual(new Uint8Array(written), fixture('plain.permall'));
    });
  }

  it('a fresh state written by swtpm with a key decodes and re-encodes', async () => {
    const dir = freshDir();
    await withSwtpm(
      [
        '--tpmstate',
        `dir=${dir}`,
        '--flags',
        'not-need-init,startup-clear',
        ...(KEYS[2]?.args ?? []),
      ],
      async (tpm) => {
        assert.equal(tpm.ioctl('-v').status, 0);
      },
    );
    const store = new StateStore(new DirBackend(dir), '2.0', { fileKey: k256 });
    const p = store.load('permall');
    const v = store.load('volatilestate');
    assert.equal(Buffer.from(p ?? []).toString('hex', 2, 6), 'ab364723');
    assert.equal(Buffer.from(v ?? []).toString('hex', 2, 6), '45637889');
    assert.deepEqual(decodeStateFile(encodeStateFile(p ?? permall, k256), k256).plain, p);
  });

  it('a damaged or wrongly keyed file fails in both, and stays unchanged', async () => {
    const dir = freshDir();
    const file = join(dir, 'tpm2-00.permall');
    const good = encodeStateFile(permall, k128);
    const bad = Uint8Array.from(good);
    bad[200] = (bad[200] ?? 0) ^ 0x80;
    writeFileSync(file, bad);
    const store = new StateStore(new DirBackend(dir), '2.0', { fileKey: k128 });
    assert.throws(() => store.load('permall'), { code: 'CORRUPT_STATE', result: 0x21 });
    await withSwtpm(['--tpmstate', `dir=${dir}`, ...(KEYS[1]?.args ?? [])], async (tpm) => {
      assert.notEqual(tpm.ioctl('-i').status, 0);
    });
    assert.deepEqual(new Uint8Array(readFileSync(file)), bad);
    writeFileSync(file, good);
    const wrongKey = new StateStore(new DirBackend(dir), '2.0', { fileKey: mk128 });
    assert.throws(() => wrongKey.load('permall'), { code: 'CORRUPT_STATE', result: 0x21 });
    assert.deepEqual(new Uint8Array(readFileSync(file)), good);
  });

  it('linear file: swtpm reads the file we wrote', async () => {
    const img = join(freshDir(), 'state.img');
    const backend = new LinearFileBackend(img);
    new StateStore(backend, '2.0', { fileKey: k128 }).store('permall', permall);
    backend.close();
    const args = ['--tpmstate', `backend-uri=file://${img}`, ...(KEYS[1]?.args ?? [])];
    await withSwtpm(args, async (tpm) => {
      assert.deepEqual(await initAndGetPermall(tpm), permall);
      assert.equal(tpm.ioctl('-v').status, 0); // swtpm adds a section to our file
    });
    const again = new StateStore(new LinearFileBackend(img), '2.0', { fileKey: k128 });
    assert.deepEqual(again.load('permall'), permall);
    assert.equal(Buffer.from(again.load('volatilestate') ?? []).toString('hex', 2, 6), '45637889');
  });
});

describe('migration blobs vs Debian swtpm', { skip: !haveSwtpm && 'swtpm not installed' }, () => {
  const keyArgs = [
    '--key',
    `file=${FIXTURES}key128.hex`,
    '--migration-key',
    `file=${FIXTURES}migkey128.hex`,
  ];

  it('GET_STATEBLOB without DECRYPTED (flags 0x07) decodes with our code', async () => {
    const dir = freshDir();
    new StateStore(new DirBackend(dir), '2.0', { fileKey: k128 }).store('permall', permall);
    await withSwtpm(['--tpmstate', `dir=${dir}`, ...keyArgs], async (tpm) => {
      assert.equal(tpm.ioctl('-i').status, 0);
      const r = await getStateBlob(tpm.ctrlPort, PERMANENT, 0);
      assert.equal(r.result, 0);
      assert.equal(r.stateFlags, ENCRYPTED);
      assert.equal(checkBlobHeader(r.blob).flags, 0x07);
      const opts = { fileKey: k128, migrationKey: mk128, stateEncrypted: true };
      assert.deepEqual(decodeMigrationBlob(r.blob, opts), permall);
      // swtpm_ioctl --save asks for DECRYPTED
      const f = join(dir, 'saved.bin');
      assert.equal(tpm.ioctl('--save', 'permanent', f).status, 0);
      const saved = new Uint8Array(readFileSync(f));
      assert.equal(checkBlobHeader(saved).flags, 0x06);
      assert.deepEqual(decodeMigrationBlob(saved, { migrationKey: mk128 }), permall);
    });
  });

  for (const decrypted of [true, false]) {
    it(`swtpm_ioctl --load accepts our blob (decrypted=${decrypted})`, async () => {
      const dir = freshDir();
      const f = join(dir, 'blob.bin');
      const { blob } = encodeMigrationBlob(permall, {
        decrypted,
        fileKey: k128,
        migrationKey: mk128,
      });
      writeFileSync(f, blob);
      await withSwtpm(['--tpmstate', `dir=${dir}`, ...keyArgs], async (tpm) => {
        assert.equal(tpm.ioctl('--stop').status, 0);
        const load = tpm.ioctl('--load', 'permanent', f);
        assert.equal(load.status, 0, load.out);
        assert.deepEqual(await initAndGetPermall(tpm, { migrationKey: mk128 }), permall);
      });
    });
  }

  it('a blob with a flipped byte is rejected by swtpm with the result we compute', async () => {
    const dir = freshDir();
    const f = join(dir, 'blob.bin');
    const { blob } = encodeMigrationBlob(permall, { decrypted: true, migrationKey: mk128 });
    blob[300] = (blob[300] ?? 0) ^ 1;
    writeFileSync(f, blob);
    assert.throws(() => decodeMigrationBlob(blob, { migrationKey: mk128 }), { result: 0x21 });
    await withSwtpm(['--tpmstate', `dir=${dir}`, ...keyArgs], async (tpm) => {
      assert.equal(tpm.ioctl('--stop').status, 0);
      const load = tpm.ioctl('--load', 'permanent', f);
      assert.notEqual(load.status, 0);
      assert.match(load.out, /0x21/);
    });
  });
});
