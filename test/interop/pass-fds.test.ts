// Fds passed over the Unix control socket (test/fixtures/pass-fds.py): a pipe given with
// CMD_SET_DATAFD is refused and closed, and a later good socket still becomes the data
// channel; fds riding along with other control commands or with TPM commands are closed.
// Debian's swtpm 0.7.1 accepts the pipe (`00000000`), then answers `0000001f` to the good
// socket until it is restarted, and keeps every fd sent with other commands.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TSWTPM_BIN, run } from '../helpers/procs.js';

const SCRIPT = fileURLToPath(new URL('../../../test/fixtures/pass-fds.py', import.meta.url));
const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;

test('CMD_SET_DATAFD with a pipe, then a good socket; fds with other commands', async (t) => {
  const ours = await run('python3', [SCRIPT, process.execPath, TSWTPM_BIN], { timeoutMs: 30000 });
  assert.equal(
    ours.stdout,
    [
      'caps 00000000',
      'pipe 00000009 extra 0', // TPM_FAIL, and the pipe is closed
      'good 00000000 extra 1', // the data socket
      'other-cmds extra 0',
      'getrandom 80010000001400000000 extra 0',
      'exit 0',
      '',
    ].join('\n'),
    ours.stderr,
  );
  assert.match(ours.stderr, /CMD_SET_DATAFD: unusable fd/);
  if (HAVE_SWTPM) {
    const theirs = await run('python3', [SCRIPT, 'swtpm'], { timeoutMs: 30000 });
    t.diagnostic(`swtpm 0.7.1: ${theirs.stdout.trim().split('\n').join('; ')}`);
    assert.match(theirs.stdout, /^pipe 00000000 extra 1$/m);
    assert.match(theirs.stdout, /^good 0000001f/m);
  }
});
