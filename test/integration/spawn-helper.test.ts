// The test helper stops what it started: a test file that forgets to stop a server
// must neither hang nor leave the server running (test/helpers/spawn-tswtpm.ts).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sleep, tempDir } from '../helpers/spawn-tswtpm.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/helpers/forgets-server.js', import.meta.url));

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('a server a test file forgot is stopped when the file ends', async (t) => {
  const pidFile = join(tempDir(), 'server.pid');
  // Run as `node --test` runs each file (in-process tests), outside this test's context.
  // (spawn() leaves out variables whose value is undefined)
  const env = { ...process.env, FORGETS_SERVER_PID_FILE: pidFile, NODE_TEST_CONTEXT: undefined };
  const child = spawn(process.execPath, [FIXTURE], { stdio: 'ignore', env });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  // Without the clean-up the file's process waits for its child forever.
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await exited;
  clearTimeout(timer);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  t.after(() => {
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  assert.equal(code, 0, 'the fixture test file ended by itself and passed');
  // SIGKILL is delivered at once; the zombie is reaped by init soon after.
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
  assert.equal(alive(pid), false, `server ${pid} is still running`);
});
