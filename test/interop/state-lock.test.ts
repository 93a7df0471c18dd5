// fcntl lock interop with Debian's swtpm 0.7.1, which locks <dir>/.lock when its
// NVRAM is initialised (at CMD_INIT).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DirBackend } from '../../src/storage/dir.js';
import { haveSwtpm, startSwtpm } from '../fixtures/state/harness.js';

const root = mkdtempSync(join(tmpdir(), 'tswtpm-lock-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('storage lock vs Debian swtpm', { skip: !haveSwtpm && 'swtpm not installed' }, () => {
  it('our lock() fails while swtpm holds .lock and succeeds after it exits', async () => {
    const dir = join(root, 'a');
    mkdirSync(dir);
    const tpm = await startSwtpm(['--tpmstate', `dir=${dir}`]);
    const ours = new DirBackend(dir);
    try {
      assert.equal(ours.lock(0), true, 'nothing locked before INIT');
      ours.unlock();
      const init = tpm.ioctl('-i');
      assert.equal(init.status, 0, init.out);
      assert.equal(ours.lock(0), false);
      const t0 = Date.now();
      assert.equal(ours.lock(5), false);
      assert.ok(Date.now() - t0 >= 40, 'retries every 10 ms');
      assert.equal(ours.locked, false);
      assert.equal(tpm.ioctl('-s').status, 0);
      await tpm.stop();
      assert.equal(ours.lock(0), true);
    } finally {
      ours.close();
      await tpm.stop();
    }
  });

  it("swtpm's INIT fails while we hold .lock, and works once we release it", async () => {
    const dir = join(root, 'b');
    mkdirSync(dir);
    const ours = new DirBackend(dir);
    assert.equal(ours.lock(0), true);
    const tpm = await startSwtpm(['--tpmstate', `dir=${dir}`]);
    try {
      const busy = tpm.ioctl('-i');
      assert.notEqual(busy.status, 0, busy.out);
      ours.unlock();
      const init = tpm.ioctl('-i');
      assert.equal(init.status, 0, init.out);
      assert.equal(ours.lock(0), false);
    } finally {
      ours.close();
      tpm.ioctl('-s');
      await tpm.stop();
    }
  });
});
