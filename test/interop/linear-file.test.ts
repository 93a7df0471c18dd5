import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { TSWTPM_BIN, pcrRead, run, startTcp, tempDir, tpm2 } from '../helpers/procs.js';

// `--tpmstate backend-uri=file://F` (swtpm's linear file) and `--print-states` are
// interchangeable with Debian's swtpm 0.7.1 (issue 5).

const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;
const work = tempDir();
after(() => work.remove());

async function printStates(which: 'swtpm' | 'tswtpm', tpmstate: string) {
  const argv = ['socket', '--tpm2', '--tpmstate', tpmstate, '--print-states'];
  return which === 'swtpm' ? run('swtpm', argv) : run(process.execPath, [TSWTPM_BIN, ...argv]);
}

describe('linear file backend', { skip: HAVE_SWTPM ? false : 'no swtpm' }, () => {
  for (const [first, second] of [
    ['tswtpm', 'swtpm'],
    ['swtpm', 'tswtpm'],
  ] as const) {
    test(`${first} writes file://, ${second} reads the same PCR 10`, async () => {
      const file = join(work.path, `${first}.img`);
      const state = ['--tpm2', '--tpmstate', `backend-uri=file://${file}`];
      const a = await startTcp(first, [...state, '--flags', 'not-need-init,startup-clear']);
      let want: string;
      try {
        assert.equal((await tpm2('pcrextend', a.port, [`10:sha256=${'5a'.repeat(32)}`])).code, 0);
        want = await pcrRead(a.port, 10);
        assert.equal((await tpm2('shutdown', a.port, [])).code, 0);
      } finally {
        await a.stop();
      }
      const states = [await printStates('swtpm', `backend-uri=file://${file}`)];
      states.push(await printStates('tswtpm', `backend-uri=file://${file}`));
      assert.equal(states[1]!.stdout, states[0]!.stdout, '--print-states agrees');
      assert.equal(states[1]!.code, states[0]!.code);
      const b = await startTcp(second, [...state, '--flags', 'not-need-init,startup-state']);
      try {
        assert.equal(await pcrRead(b.port, 10), want);
      } finally {
        await b.stop();
      }
    });
  }

  test('--print-states of a state directory matches swtpm, empty and filled', async () => {
    const dir = tempDir();
    try {
      const empty = [await printStates('swtpm', `dir=${dir.path}`)];
      empty.push(await printStates('tswtpm', `dir=${dir.path}`));
      assert.equal(empty[1]!.stdout, empty[0]!.stdout);
      assert.match(empty[1]!.stdout, /"states": \[\] \}/);
      const a = await startTcp('tswtpm', [
        '--tpm2',
        '--tpmstate',
        `dir=${dir.path}`,
        '--flags',
        'not-need-init',
      ]);
      await run('swtpm_ioctl', ['--tcp', `127.0.0.1:${a.ctrlPort}`, '-v']);
      await a.stop();
      const filled = [await printStates('swtpm', `dir=${dir.path}`)];
      filled.push(await printStates('tswtpm', `dir=${dir.path}`));
      assert.equal(filled[1]!.stdout, filled[0]!.stdout);
      assert.match(filled[1]!.stdout, /"name": "permall"/);
      assert.match(filled[1]!.stdout, /"name": "volatilestate"/);
    } finally {
      dir.remove();
    }
  });
});
