// `--server type=unixio,mode=0600` and `--ctrl type=unixio,mode=0600`: no client can
// connect while the socket file still has the umask's permissions (the mode is set
// between bind() and listen()). test/fixtures/socket-mode.py watches the path from
// before the server starts, under umask 000, over several starts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TSWTPM_BIN, run } from '../helpers/procs.js';

const SCRIPT = fileURLToPath(new URL('../../../test/fixtures/socket-mode.py', import.meta.url));
const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;

for (const which of ['server', 'ctrl']) {
  test(`--${which} type=unixio: connectable only with the final mode`, async () => {
    const ours = await run('python3', [SCRIPT, '20', which, process.execPath, TSWTPM_BIN], {
      timeoutMs: 120000,
    });
    assert.equal(ours.stdout, 'connectable with mode 600\n', ours.stderr);
    if (HAVE_SWTPM) {
      const theirs = await run('python3', [SCRIPT, '3', which, 'swtpm'], { timeoutMs: 60000 });
      assert.equal(theirs.stdout, 'connectable with mode 600\n', theirs.stderr);
    }
  });
}
