// fcntl lock interop with Debian's swtpm 0.7.1, which locks <dir>/.lock when its
// NVRAM is initialised (at CMD_INIT).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DirBackend } from '../../src/storage/dir.js';
import { LinearFileBackend } from '../../src/storage/file.js';
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

describe('linear file lock between processes', () => {
  it('a lock held by another process (doing I/O while locked) blocks ours', async () => {
    const img = join(root, 'state.img');
    const mod = new URL('../../src/storage/file.js', import.meta.url).href;
    const script = `
      import { LinearFileBackend } from '${mod}';
      const b = new LinearFileBackend(process.argv[1], { lock: true });
      if (!b.lock(0)) process.exit(3);
      b.write('2.0', 'permall', new Uint8Array(100));
      b.read('2.0', 'permall');
      b.delete('2.0', 'permall');
      console.log('locked');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, img], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      assert.equal(line.toString().trim(), 'locked');
      const ours = new LinearFileBackend(img, { lock: true });
      assert.equal(ours.lock(2), false);
      assert.equal(ours.read('2.0', 'permall'), undefined);
      child.kill();
      await once(child, 'exit');
      assert.equal(ours.lock(0), true);
      ours.close();
    } finally {
      child.kill();
    }
  });
});
