import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlClient, TpmClient } from '../../src/client/index.js';
import { startTcp, tempDir } from '../helpers/procs.js';

// The storage-lock timeline of swtpm 0.8+ (control-channel.md §6.4): locked at INIT
// (deferred with --migration incoming), released after GET_STATEBLOB(savestate), taken
// again by the next TPM command or CMD_LOCK_STORAGE. Observed as swtpm's own tests do:
// through an open fd on `.lock` in /proc/PID/fd.

const GET_RANDOM = Buffer.from('80010000000c0000017b0008', 'hex');
const work = tempDir();
after(() => work.remove());

function holdsLock(pid: number, dir: string): boolean {
  const fdDir = `/proc/${pid}/fd`;
  return readdirSync(fdDir).some((fd) => {
    try {
      return readlinkSync(join(fdDir, fd)) === join(dir, '.lock');
    } catch {
      return false;
    }
  });
}

test('lock released after the savestate blob, retaken by a TPM command or LOCK_STORAGE', async () => {
  const dir = join(work.path, 'a');
  mkdirSync(dir);
  const s = await startTcp('tswtpm', [
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--flags',
    'not-need-init,startup-clear',
  ]);
  const pid = s.proc.pid!;
  const ctl = new ControlClient({ port: s.ctrlPort });
  const tpm = new TpmClient({ port: s.port });
  try {
    await tpm.transmit(GET_RANDOM);
    assert.ok(holdsLock(pid, dir), 'locked once started');
    assert.ok((await ctl.getStateBlob(1)) !== undefined);
    assert.ok((await ctl.getStateBlob(2)) !== undefined);
    assert.ok(holdsLock(pid, dir), 'still locked after permanent and volatile');
    assert.equal(await ctl.getStateBlob(3), undefined, 'TPM 2 has no savestate blob');
    assert.ok(!holdsLock(pid, dir), 'released after the savestate fetch');
    await tpm.transmit(GET_RANDOM);
    assert.ok(holdsLock(pid, dir), 'a TPM command takes it again');
    await ctl.getStateBlob(3);
    assert.ok(!holdsLock(pid, dir));
    await ctl.lockStorage(10);
    assert.ok(holdsLock(pid, dir), 'CMD_LOCK_STORAGE takes it again');
  } finally {
    await tpm.close();
    await s.stop();
  }
});

test('--migration incoming defers the lock until a blob is set or a command runs', async () => {
  const dir = join(work.path, 'b');
  mkdirSync(dir);
  const s = await startTcp('tswtpm', [
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--migration',
    'incoming',
  ]);
  const pid = s.proc.pid!;
  const ctl = new ControlClient({ port: s.ctrlPort });
  const tpm = new TpmClient({ port: s.port });
  try {
    await ctl.init();
    assert.ok(!holdsLock(pid, dir), 'not locked after INIT of an incoming migration');
    await tpm.transmit(GET_RANDOM);
    assert.ok(holdsLock(pid, dir), 'the first TPM command takes the lock');
  } finally {
    await tpm.close();
    await s.stop();
  }
});
