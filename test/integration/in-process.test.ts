import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { enginePoolStats } from '../../src/engine/index.js';
import { startTpm, startTpmInProcess } from '../../src/index.js';
import { tempDir } from '../helpers/procs.js';

// TPM2_GetRandom(16).
const GET_RANDOM = Buffer.from('80010000000c0000017b0010', 'hex');

test('startTpmInProcess() serves a TPM 2.0 on Unix sockets without spawning', async () => {
  const t = await startTpmInProcess();
  try {
    const caps = await t.control.getCapability();
    assert.equal(caps.mask, 0x1ffff);
    const rsp = Buffer.from(await t.tpm.transmit(GET_RANDOM));
    assert.equal(rsp.readUInt32BE(6), 0, 'GetRandom succeeds (Startup was sent)');
    assert.equal(rsp.readUInt16BE(10), 16);
  } finally {
    await t.close();
  }
  assert.equal(existsSync(t.ctrlPath), false, 'sockets are removed');
  assert.equal(existsSync(t.stateDir), false, 'the temporary state is removed');
});

test('an in-process TPM that cannot start gives its libtpms copy back', async () => {
  const held = enginePoolStats().held;
  // Refused by the --profile check (libtpms 0.9 has no profiles; 0.10 rejects the name),
  // after the engine was opened and before any state exists.
  await assert.rejects(startTpmInProcess({ args: ['--profile', 'name=no-such-profile'] }));
  assert.equal(enginePoolStats().held, held, 'after a refused --profile');
  // Refused when the state is opened: the key file does not exist.
  await assert.rejects(startTpmInProcess({ args: ['--key', 'file=/nonexistent/key'] }));
  assert.equal(enginePoolStats().held, held, 'after an unusable --key');
});

test('an in-process TPM started after another closed; startup none waits for CMD_INIT', async () => {
  const t = await startTpmInProcess({ startup: 'none' });
  try {
    // Not started: the data channel answers TPM_RC_FAILURE until CMD_INIT.
    let rsp = Buffer.from(await t.tpm.transmit(GET_RANDOM));
    assert.equal(rsp.readUInt32BE(6), 0x101);
    await t.control.init();
    rsp = Buffer.from(await t.tpm.transmit(GET_RANDOM));
    assert.equal(rsp.readUInt32BE(6), 0x100, 'running, waiting for TPM2_Startup');
  } finally {
    await t.close();
  }
});

// swtpm's option syntax splits at ',' with no escape: a state path that contains
// ",backup" or ",mode=0666" must stay one path and add no option.
for (const how of ['in-process', 'child'] as const) {
  test(`${how}: a state directory with ',' in its name is used as it is`, async () => {
    const work = tempDir();
    try {
      for (const name of ['st,backup', 'st,mode=0666']) {
        const stateDir = join(work.path, name);
        mkdirSync(stateDir);
        mkdirSync(join(work.path, 'st'), { recursive: true }); // where a split path would go
        const t =
          how === 'in-process'
            ? await startTpmInProcess({ stateDir })
            : await startTpm({ stateDir });
        const rsp = Buffer.from(await t.tpm.transmit(GET_RANDOM));
        assert.equal(rsp.readUInt32BE(6), 0);
        await t.close();
        const files = readdirSync(stateDir);
        assert.ok(files.includes('tpm2-00.permall'), `${name}: ${files}`);
        assert.deepEqual(readdirSync(join(work.path, 'st')), [], 'nothing went elsewhere');
        // mode= did not apply (the default state file mode is 0640).
        assert.equal(statSync(join(stateDir, 'tpm2-00.permall')).mode & 0o777, 0o640);
        assert.equal(existsSync(join(stateDir, 'tpm2-00.permall.bak')), false);
      }
    } finally {
      work.remove();
    }
  });
}
