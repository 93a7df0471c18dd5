import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ControlClient } from '../../src/client/index.js';
import { TSWTPM_BIN, freePortPair, run, startTcp, tempDir } from '../helpers/procs.js';

// A wrong key, a flipped ciphertext byte or a truncated file is a clear error at start-up,
// at CMD_INIT and at CMD_SET_STATEBLOB, and nothing on disk changes (issue 5).
// The messages are listed in docs/compat.md ("State errors").

const KEY = '000102030405060708090a0b0c0d0e0f';
const WRONG = 'f0e0d0c0b0a090807060504030201000';
const work = tempDir();
const keyFile = join(work.path, 'key');
const wrongKeyFile = join(work.path, 'wrong');
const good = join(work.path, 'good');
let blob: Buffer;

before(async () => {
  writeFileSync(keyFile, KEY);
  writeFileSync(wrongKeyFile, WRONG);
  await run('mkdir', ['-p', good]);
  const s = await startTcp('tswtpm', [
    '--tpm2',
    '--tpmstate',
    `dir=${good}`,
    '--key',
    `file=${keyFile}`,
    '--flags',
    'not-need-init,startup-clear',
  ]);
  const ctl = new ControlClient({ port: s.ctrlPort });
  const got = await ctl.getStateBlob(1, { decrypted: false });
  assert.ok(got !== undefined);
  blob = Buffer.from(got.data);
  await s.stop();
});
after(() => work.remove());

function snapshot(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  // `.lock` is the lock file: empty, and created by whoever takes the lock.
  for (const f of readdirSync(dir)) {
    if (f !== '.lock') m.set(f, readFileSync(join(dir, f)).toString('hex'));
  }
  return m;
}

const CASES: ReadonlyArray<{
  name: string;
  key: string;
  mangle: (b: Buffer) => Buffer;
  msg: RegExp;
}> = [
  {
    name: 'wrong key',
    key: wrongKeyFile,
    mangle: (b) => b,
    msg: /tpm2-00\.permall.*(HMAC|decrypt)/i,
  },
  {
    name: 'flipped ciphertext byte',
    key: keyFile,
    mangle: (b) => {
      const c = Buffer.from(b);
      c[40] = (c[40] ?? 0) ^ 0x55;
      return c;
    },
    msg: /tpm2-00\.permall.*(HMAC|decrypt)/i,
  },
  {
    name: 'truncated file',
    key: keyFile,
    mangle: (b) => b.subarray(0, b.length - 100),
    msg: /tpm2-00\.permall/,
  },
];

describe('unusable state files', () => {
  for (const c of CASES) {
    test(`${c.name}: start-up fails clearly, INIT fails, the file is unchanged`, async () => {
      const dir = join(work.path, c.name.replace(/ /g, '-'));
      await run('mkdir', ['-p', dir]);
      const permall = join(dir, 'tpm2-00.permall');
      copyFileSync(join(good, 'tpm2-00.permall'), permall);
      writeFileSync(permall, c.mangle(readFileSync(permall)));
      const before = snapshot(dir);

      const p = await freePortPair();
      const args = ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--key', `file=${c.key}`];
      const srv = ['--server', `type=tcp,port=${p}`, '--ctrl', `type=tcp,port=${p + 1}`];
      const r = await run(process.execPath, [
        TSWTPM_BIN,
        ...args,
        ...srv,
        '--flags',
        'not-need-init',
      ]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, c.msg);
      assert.match(r.stderr, /Could not initialize libtpms/);

      const s = await startTcp('tswtpm', args.slice(1));
      try {
        const init = await run('swtpm_ioctl', ['--tcp', `127.0.0.1:${s.ctrlPort}`, '-i']);
        assert.equal(init.code, 1);
        assert.match(init.stderr, /TPM result from PTM_INIT: 0x/);
        assert.match(s.stderr(), c.msg);
        // Still serving.
        const caps = await run('swtpm_ioctl', ['--tcp', `127.0.0.1:${s.ctrlPort}`, '-c']);
        assert.equal(caps.code, 0);
      } finally {
        await s.stop();
      }
      assert.deepEqual(snapshot(dir), before, 'nothing in the state directory changed');
    });
  }

  test('SET_STATEBLOB of a flipped encrypted blob answers TPM_DECRYPT_ERROR, disk unchanged', async () => {
    const dir = join(work.path, 'setblob');
    await run('mkdir', ['-p', dir]);
    const s = await startTcp('tswtpm', [
      '--tpm2',
      '--tpmstate',
      `dir=${dir}`,
      '--key',
      `file=${keyFile}`,
    ]);
    try {
      const before = snapshot(dir);
      const ctl = new ControlClient({ port: s.ctrlPort });
      await ctl.stop();
      const bad = Buffer.from(blob);
      bad[bad.length - 40] = (bad[bad.length - 40] ?? 0) ^ 1;
      await assert.rejects(
        ctl.setStateBlob(1, bad, { encrypted: true }),
        (e: { result?: number }) => e.result === 0x21,
      );
      const truncated = blob.subarray(0, blob.length - 7);
      await assert.rejects(
        ctl.setStateBlob(1, truncated, { encrypted: true }),
        (e: { result?: number }) => e.result === 0x03,
      );
      assert.deepEqual(snapshot(dir), before);
      // The good blob still loads afterwards.
      await ctl.setStateBlob(1, blob, { encrypted: true });
      await ctl.init();
    } finally {
      await s.stop();
    }
  });
});
