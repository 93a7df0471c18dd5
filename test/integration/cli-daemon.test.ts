import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlClient } from '../../src/client/index.js';
import { TSWTPM_BIN, freePortPair, run, tempDir } from '../helpers/procs.js';

// -d/--daemon returns once the sockets serve; -r/--runas drops privileges before any
// state file is written.

const work = tempDir();
after(() => work.remove());
const isRoot = process.getuid?.() === 0;

test('-d returns 0 once the TPM serves; --runas nobody owns the state files', async () => {
  const dir = join(work.path, 'd');
  await run('mkdir', ['-p', dir]);
  chmodSync(work.path, 0o755); // mkdtemp makes it 0700: --runas nobody must get in
  chmodSync(dir, 0o777);
  const p = await freePortPair();
  const pid = join(dir, 'pid');
  const r = await run(process.execPath, [
    TSWTPM_BIN,
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--server',
    `type=tcp,port=${p}`,
    '--ctrl',
    `type=tcp,port=${p + 1}`,
    '--flags',
    'not-need-init,startup-clear',
    '--pid',
    `file=${pid}`,
    '-d',
    ...(isRoot ? ['--runas', 'nobody'] : []),
  ]);
  assert.equal(r.code, 0, r.stderr);
  // Ready means ready: no retry loop is needed to talk to it.
  const ctl = new ControlClient({ port: p + 1 });
  try {
    assert.equal((await ctl.getCapability()).mask, 0x1ffff);
    // swtpm writes the bare number, no newline (libvirt and scripts read it as is).
    const pidText = readFileSync(pid, 'utf8');
    assert.match(pidText, /^[1-9]\d*$/);
    if (isRoot) {
      const nobody = statSync(join(dir, 'tpm2-00.permall')).uid;
      assert.notEqual(nobody, 0, 'the state file belongs to the --runas user');
    }
  } finally {
    // A failed check must not leave the daemon running (it outlives the test).
    await ctl.shutdown();
  }
  for (let i = 0; i < 200 && existsSync(pid); i++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(existsSync(pid), false, 'the daemon removed its pid file at shutdown');
});

test('-d relays a start-up error and its exit code', async () => {
  const p = await freePortPair();
  const r = await run(process.execPath, [
    TSWTPM_BIN,
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${join(work.path, 'missing')}`,
    '--server',
    `type=tcp,port=${p}`,
    '--flags',
    'not-need-init',
    '-d',
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Could not initialize libtpms/);
});

test('an unknown --runas user is a clear error', async () => {
  const a = await run(process.execPath, [
    TSWTPM_BIN,
    'socket',
    '--runas',
    'no-such-user-x',
    '--tpmstate',
    `dir=${work.path}`,
  ]);
  assert.equal(a.code, 1);
  assert.match(a.stderr, /User 'no-such-user-x' does not exist/);
});
