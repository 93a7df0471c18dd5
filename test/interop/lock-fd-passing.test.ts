import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ControlClient } from '../../src/client/index.js';
import { TSWTPM_BIN, freePortPair, run, tempDir, waitForPort } from '../helpers/procs.js';

// Issue 10: the control session closes every fd that rides along with a command other
// than CMD_SET_DATAFD. When a local client passes an fd of the state directory's
// `.lock` file, that close used to drop the server's classic POSIX lock (those belong
// to the process, and any close of the file releases them), and C swtpm could then
// open the same state. The lock is an open-file-description lock (F_OFD_SETLK) now:
// only closing the server's own fd releases it, and it still excludes swtpm's locks.

const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;
const work = tempDir();
after(() => work.remove());

/** A server on `dir` with its control channel on a Unix socket; stop() ends it. */
async function serve(which: 'swtpm' | 'tswtpm', dir: string, ctrl: string) {
  const port = await freePortPair();
  const argv = [
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--flags',
    'not-need-init',
    '--server',
    `type=tcp,port=${port}`,
    '--ctrl',
    `type=unixio,path=${ctrl}`,
  ];
  const proc =
    which === 'swtpm'
      ? spawn('swtpm', argv, { stdio: 'ignore' })
      : spawn(process.execPath, [TSWTPM_BIN, ...argv], { stdio: 'ignore' });
  const exited = new Promise((r) => proc.once('exit', r));
  await waitForPort(port, proc);
  // A control reply comes only once the TPM has started (and holds the lock).
  await new ControlClient({ path: ctrl }, { timeoutMs: 10000 }).getCapability();
  return {
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Exit code of `which` started on `dir` (1 = it could not take the lock), 0 if it served. */
async function startAndStop(which: 'swtpm' | 'tswtpm', dir: string): Promise<number> {
  const p = await freePortPair();
  const argv = [
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--flags',
    'not-need-init',
    '--server',
    `type=tcp,port=${p}`,
    '--ctrl',
    `type=tcp,port=${p + 1}`,
  ];
  const proc =
    which === 'swtpm'
      ? spawn('swtpm', argv, { stdio: 'ignore' })
      : spawn(process.execPath, [TSWTPM_BIN, ...argv], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  // The sockets listen before the TPM starts; a control reply comes only after it did.
  try {
    await waitForPort(p + 1, proc);
    await new ControlClient({ port: p + 1 }, { timeoutMs: 10000 }).getCapability();
  } catch {
    return (await exited) ?? -1;
  }
  proc.kill('SIGTERM');
  await exited;
  return 0;
}

/** Passes an fd of `<dir>/.lock` with CMD_GET_CAPABILITY; the server closes it. */
async function passLockFd(dir: string, ctrl: string): Promise<void> {
  const fd = openSync(join(dir, '.lock'), 'r');
  try {
    const ctl = new ControlClient({ path: ctrl });
    const rsp = await ctl.request({ cmd: 'GET_CAPABILITY' }, { fds: [fd] });
    assert.equal(rsp.result, 0);
  } finally {
    closeSync(fd);
  }
}

describe(
  'an fd of .lock passed over the control channel',
  { skip: !HAVE_SWTPM && 'no swtpm' },
  () => {
    test('tswtpm keeps its storage lock: swtpm still cannot start on the state', async () => {
      const dir = join(work.path, 'ours');
      await run('mkdir', ['-p', dir]);
      const ctrl = join(work.path, 'ours.ctrl');
      const s = await serve('tswtpm', dir, ctrl);
      try {
        assert.equal(await startAndStop('swtpm', dir), 1, 'locked out before');
        await passLockFd(dir, ctrl);
        await passLockFd(dir, ctrl);
        assert.equal(await startAndStop('swtpm', dir), 1, 'still locked out afterwards');
      } finally {
        await s.stop();
      }
      assert.equal(await startAndStop('swtpm', dir), 0, 'free once tswtpm is gone');
    });

    // The difference is noted in docs/compat.md: swtpm 0.7.1 loses its lock this way.
    test('swtpm 0.7.1 (the reference) loses its lock the same way', async () => {
      const dir = join(work.path, 'theirs');
      await run('mkdir', ['-p', dir]);
      const ctrl = join(work.path, 'theirs.ctrl');
      const s = await serve('swtpm', dir, ctrl);
      try {
        assert.equal(await startAndStop('tswtpm', dir), 1, 'locked out before');
        await passLockFd(dir, ctrl);
        assert.equal(await startAndStop('tswtpm', dir), 1, 'still locked out afterwards');
      } finally {
        await s.stop();
      }
    });
  },
);
