import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TSWTPM_BIN, run } from '../helpers/procs.js';

// `--fd N --ctrl type=unixio,clientfd=M`: both channels are sockets the parent already
// connected (swtpm's test_clientfds). After CMD_SHUTDOWN the process exits even though
// the parent keeps its ends open.

const SCRIPT = fileURLToPath(new URL('../../../test/fixtures/clientfds.py', import.meta.url));
const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;

test('--fd and clientfd: serve, then exit 0 after SHUTDOWN', async () => {
  const ours = await run('python3', [SCRIPT, process.execPath, TSWTPM_BIN, 'socket']);
  assert.equal(ours.code, 0, ours.stderr);
  assert.equal(
    ours.stdout,
    'caps 000000000001ffff\ngetrandom rc 00000000\nshutdown 00000000\nexit 0\n',
  );
  if (HAVE_SWTPM) {
    const theirs = await run('python3', [SCRIPT, 'swtpm', 'socket']);
    // docs/compat.md: 0.7.1 advertises 0xffff (no LOCK_STORAGE).
    assert.equal(theirs.stdout, ours.stdout.replace('0001ffff', '0000ffff'));
  }
});
