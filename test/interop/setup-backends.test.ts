// State backends and encryption as libvirt uses them: `file://` linear files, and
// `--pwdfile-fd N --cipher aes-256-cbc` (the passphrase on an inherited fd). The states
// made by swtpm_setup and tswtpm_setup (in process and on C swtpm) must load in C swtpm
// with the same key and show the same EKs.
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { tempDir } from '../helpers/procs.js';
import { privateConfig, runSetup, viewState, withServer } from '../helpers/setup-peers.js';

const tmp = tempDir('setup-backends-');
let conf = '';
before(() => {
  conf = privateConfig(tmp.path);
});
after(() => tmp.remove());

test('file:// state with --pwdfile-fd and aes-256-cbc: loads in C swtpm and tswtpm with that key', async () => {
  const pwd = join(tmp.path, 'passphrase');
  writeFileSync(pwd, 'a secret passphrase');
  const views: string[] = [];
  for (const peer of ['c', 'ts', 'ts-on-c'] as const) {
    const file = join(tmp.path, `${peer}.state`);
    const fd = openSync(pwd, 'r');
    let r: Awaited<ReturnType<typeof runSetup>>;
    try {
      r = await runSetup(
        peer,
        [
          '--tpm2',
          '--tpm-state',
          `file://${file}`,
          '--config',
          conf,
          '--createek',
          '--pwdfile-fd',
          '3',
          '--cipher',
          'aes-256-cbc',
          '--pcr-banks',
          'sha384',
        ],
        undefined,
        [fd],
      );
    } finally {
      closeSync(fd);
    }
    assert.equal(r.code, 0, `${peer}: ${r.stdout}${r.stderr}`);
    assert.match(
      r.stdout,
      /^ {2}The TPM's state will be encrypted using a key derived from a passphrase \(fd\)\.\n/,
    );
    const key = ['--key', `pwdfile=${pwd},mode=aes-256-cbc`];
    // Each state in C swtpm; ours also in tswtpm.
    for (const server of peer === 'ts' ? (['swtpm', 'tswtpm'] as const) : (['swtpm'] as const)) {
      const v = await withServer(server, `backend-uri=file://${file}`, viewState, key);
      views.push(JSON.stringify(v));
      assert.match(v.pcrs, /sha384: \[ 0,/);
    }
    // Without the key the state does not load.
    if (peer === 'ts')
      await assert.rejects(withServer('swtpm', `backend-uri=file://${file}`, viewState));
  }
  for (const v of views) assert.equal(v, views[0]);
});

test('a failed run on a new file:// state leaves no file behind', async () => {
  const dir = join(tmp.path, 'fail');
  mkdirSync(dir);
  const file = join(dir, 'new.state');
  const r = await runSetup('ts', [
    '--tpm2',
    '--tpm-state',
    `file://${file}`,
    '--config',
    conf,
    '--createek',
    '--pcr-banks',
    'nope',
  ]);
  assert.equal(r.code, 1);
  assert.throws(() => closeSync(openSync(file, 'r')), /ENOENT/);
});
