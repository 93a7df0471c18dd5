import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  readFileSync,
  readdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TpmClient } from '../../src/client/index.js';
import { TPMA_NV, nvDefineSpace2, nvIncrement2, nvRead2 } from '../../src/protocol/tpm/commands.js';
import { ekModulus } from '../helpers/ek.js';
import { TSWTPM_BIN, freePortPair, run, startTcp, tempDir } from '../helpers/procs.js';

// Issue 10: a start that fails must leave the state directory exactly as it was; with
// `backup`, a wrong --key used to set the permall aside as .bad and promote the .bak,
// so NV indices, counters and lockout state went back a generation. And a start that
// finds no permall but a .bak starts from the backup instead of making a new TPM.

const KEY = '000102030405060708090a0b0c0d0e0f';
const WRONG = 'f0e0d0c0b0a090807060504030201000';
const NV_INDEX = 0x01500030;
const NV_ATTRS =
  TPMA_NV.OWNERWRITE |
  TPMA_NV.AUTHWRITE |
  TPMA_NV.NT_COUNTER |
  TPMA_NV.OWNERREAD |
  TPMA_NV.AUTHREAD |
  TPMA_NV.NO_DA;
const INCREMENTS = 5;

const work = tempDir();
const keyFile = join(work.path, 'key');
const wrongKeyFile = join(work.path, 'wrong');
const base = join(work.path, 'base');
let ek = '';
let counter = 0n;
after(() => work.remove());

const rc = (r: Uint8Array) => Buffer.from(r).readUInt32BE(6);
const args = (dir: string, key: string, backup: boolean) => [
  '--tpm2',
  '--tpmstate',
  `dir=${dir}${backup ? ',backup' : ''}`,
  '--key',
  `file=${key}`,
  '--flags',
  'not-need-init,startup-clear',
];

async function readCounter(port: number): Promise<bigint> {
  const tpm = new TpmClient({ port }, { timeoutMs: 10000 });
  try {
    const r = await tpm.transmit(nvRead2(NV_INDEX, 8, 0));
    assert.equal(rc(r), 0, 'the counter is readable');
    return r.readBigUInt64BE(16);
  } finally {
    await tpm.close();
  }
}

/** Every name in `dir` with its mode and bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    out[f] = `${statSync(p).mode.toString(8)} ${readFileSync(p).toString('hex')}`;
  }
  return out;
}

before(async () => {
  writeFileSync(keyFile, KEY);
  writeFileSync(wrongKeyFile, WRONG);
  await run('mkdir', ['-p', base]);
  const s = await startTcp('tswtpm', args(base, keyFile, true));
  const tpm = new TpmClient({ port: s.port }, { timeoutMs: 10000 });
  try {
    assert.equal(rc(await tpm.transmit(nvDefineSpace2(NV_INDEX, 8, NV_ATTRS))), 0);
    // Each increment rewrites the permall: the .bak holds the generation before.
    for (let i = 0; i < INCREMENTS; i++) {
      assert.equal(rc(await tpm.transmit(nvIncrement2(NV_INDEX))), 0);
    }
  } finally {
    await tpm.close();
  }
  counter = await readCounter(s.port);
  ek = await ekModulus(s.port);
  assert.equal(await s.stop(), 0);
});

for (const backup of [false, true]) {
  test(`a start with a wrong --key${backup ? ' under backup' : ''} changes no file`, async () => {
    const dir = join(work.path, `wrong-key-${backup}`);
    cpSync(base, dir, { recursive: true });
    const before = snapshot(dir);
    assert.ok('tpm2-00.permall.bak' in before);
    const p = await freePortPair();
    const r = await run(process.execPath, [
      TSWTPM_BIN,
      'socket',
      ...args(dir, wrongKeyFile, backup),
      '--server',
      `type=tcp,port=${p}`,
      '--ctrl',
      `type=tcp,port=${p + 1}`,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /HMAC verification failed/);
    assert.deepEqual(snapshot(dir), before, 'the state directory is byte-for-byte unchanged');

    // The right key then finds the newest state.
    const s = await startTcp('tswtpm', args(dir, keyFile, backup));
    try {
      assert.equal(await readCounter(s.port), counter, 'the NV counter did not go back');
    } finally {
      await s.stop();
    }
  });
}

test('backup: a start without a permall starts from the .bak, never as a new TPM', async () => {
  const dir = join(work.path, 'no-permall');
  cpSync(base, dir, { recursive: true });
  unlinkSync(join(dir, 'tpm2-00.permall'));
  const s = await startTcp('tswtpm', args(dir, keyFile, true));
  try {
    assert.equal(await ekModulus(s.port), ek, 'the same endorsement key');
    assert.ok((await readCounter(s.port)) >= counter - 1n, 'at most one generation back');
  } finally {
    await s.stop();
  }
  assert.match(s.stderr(), /no permall; starting from its backup/);
  assert.ok(existsSync(join(dir, 'tpm2-00.permall')), 'the permall is back');
});

test('backup without a .bak: a wrong key fails and changes nothing', async () => {
  const dir = join(work.path, 'no-bak');
  cpSync(base, dir, { recursive: true });
  unlinkSync(join(dir, 'tpm2-00.permall.bak'));
  const before = snapshot(dir);
  const p = await freePortPair();
  const r = await run(process.execPath, [
    TSWTPM_BIN,
    'socket',
    ...args(dir, wrongKeyFile, true),
    '--server',
    `type=tcp,port=${p}`,
  ]);
  assert.equal(r.code, 1);
  assert.deepEqual(snapshot(dir), before);
});
