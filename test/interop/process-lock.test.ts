import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { TSWTPM_BIN, freePortPair, run, startTcp, tempDir } from '../helpers/procs.js';

// tswtpm and C swtpm exclude each other on one state directory through the fcntl lock
// on `.lock`: whichever starts second fails to take it (issue 5).

const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;
const work = tempDir();
after(() => work.remove());

/** Runs a server that should fail at start-up; resolves with its exit code and stderr. */
async function startFails(which: 'swtpm' | 'tswtpm', dir: string) {
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
  return which === 'swtpm'
    ? run('swtpm', argv, { timeoutMs: 10000 })
    : run(process.execPath, [TSWTPM_BIN, ...argv], { timeoutMs: 10000 });
}

describe('one state directory, two emulators', { skip: HAVE_SWTPM ? false : 'no swtpm' }, () => {
  for (const [first, second] of [
    ['swtpm', 'tswtpm'],
    ['tswtpm', 'swtpm'],
  ] as const) {
    test(`${first} first: ${second} cannot take the lock`, async () => {
      const dir = tempDir();
      try {
        const a = await startTcp(first, [
          '--tpm2',
          '--tpmstate',
          `dir=${dir.path}`,
          '--flags',
          'not-need-init',
        ]);
        try {
          const b = await startFails(second, dir.path);
          assert.equal(b.code, 1, `${second} must fail while ${first} holds the lock`);
          assert.match(b.stderr, /lock/i);
          assert.match(b.stderr, /Could not initialize libtpms/);
        } finally {
          await a.stop();
        }
        // Once the first is gone, the second starts on the same state.
        const c = await startTcp(second, [
          '--tpm2',
          '--tpmstate',
          `dir=${dir.path}`,
          '--flags',
          'not-need-init',
        ]);
        await c.stop();
      } finally {
        dir.remove();
      }
    });
  }

  test('CMD_INIT on tswtpm fails with TPM_FAIL while swtpm holds the lock, then succeeds', async () => {
    const dir = tempDir();
    try {
      const ours = await startTcp('tswtpm', ['--tpm2', '--tpmstate', `dir=${dir.path}`]);
      try {
        const ctl = ['--tcp', `127.0.0.1:${ours.ctrlPort}`];
        const c = await startTcp('swtpm', [
          '--tpm2',
          '--tpmstate',
          `dir=${dir.path}`,
          '--flags',
          'not-need-init',
        ]);
        const init = await run('swtpm_ioctl', [...ctl, '-i']);
        assert.equal(init.code, 1);
        assert.equal(init.stderr.trim(), 'TPM result from PTM_INIT: 0x9');
        assert.match(ours.stderr(), /another process holds the lock/);
        await c.stop();
        const again = await run('swtpm_ioctl', [...ctl, '-i']);
        assert.equal(again.code, 0, again.stderr);
        const caps = await run('swtpm_ioctl', [...ctl, '-c']);
        assert.equal(caps.stdout.trim(), 'ptm capability is 0x1ffff');
      } finally {
        await ours.stop();
      }
    } finally {
      dir.remove();
    }
  });
});
