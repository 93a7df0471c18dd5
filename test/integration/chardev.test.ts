import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TSWTPM_BIN, run } from '../helpers/procs.js';

// `tswtpm chardev --chardev /dev/pts/N`: TPM commands through a pty, control over a Unix
// socket; CMD_SHUTDOWN ends the process although a read() on the pty is pending.

const SCRIPT = fileURLToPath(new URL('../../../test/fixtures/chardev-pty.py', import.meta.url));
const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;
const WANT = 'getrandom 80010000001400000000 20\nshutdown 00000000\nexit 0\n';

test('chardev on a pty serves TPM commands and exits after SHUTDOWN', async () => {
  const ours = await run('python3', [SCRIPT, process.execPath, TSWTPM_BIN, 'chardev']);
  assert.equal(ours.stdout, WANT, ours.stderr);
  if (HAVE_SWTPM) {
    const theirs = await run('python3', [SCRIPT, 'swtpm', 'chardev']);
    assert.equal(theirs.stdout, WANT);
  }
});

const SLOW = fileURLToPath(new URL('../../../test/fixtures/chardev-pty-slow.py', import.meta.url));

// 3000 responses of 60 bytes are far more than a pty holds: the server's writes meet
// a full pty (EAGAIN on its non-blocking fd) and must wait for the reader.
test('chardev on a pty whose peer does not read for a while keeps serving', async () => {
  const ours = await run('python3', [SLOW, '3000', process.execPath, TSWTPM_BIN, 'chardev'], {
    timeoutMs: 90000,
  });
  assert.equal(ours.stdout, 'alive true\nresponses 3000\nshutdown 00000000\nexit 0\n', ours.stderr);
});
