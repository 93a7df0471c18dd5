// The control channel's 500 ms deadline counts from a request's first byte to its
// arrival, not to when the server gets round to reading it (swtpm polls its sockets
// before it looks at the clock). A preload makes the server's main thread stall for
// 900 ms on SIGUSR2 (as a long synchronous step or a starved process would); the rest of
// a GET_CAPABILITY arrives 150 ms after its first bytes, during the stall. Node runs the
// due deadline timer before it reads that socket, so the request used to be refused
// (`00000003`, then closed) although its bytes were all there in time.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { RawConn, sleep, startTpm, stopAll, tempDir } from '../helpers/spawn-tswtpm.js';

after(stopAll);

test('a control request whose bytes all arrived within 500 ms is answered after a stall of the server', async () => {
  const dir = tempDir();
  const preload = join(dir, 'stall.cjs');
  writeFileSync(
    preload,
    "process.on('SIGUSR2', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 900));\n",
  );
  const s = await startTpm({
    flags: 'not-need-init,startup-clear',
    env: { NODE_OPTIONS: `--require ${preload}` },
  });
  const c = await RawConn.connect(s.ctrl!);
  try {
    c.write(Buffer.from([0, 0])); // CMD_GET_CAPABILITY is 00 00 00 01
    await sleep(50);
    process.kill(s.p.pid, 'SIGUSR2');
    await sleep(100);
    c.write(Buffer.from([0, 1]));
    // A refusal is `00000003` and a close; the answer is the 8-byte capability set.
    const rsp = await c.read(8, 5000).catch((e: Error) => Buffer.from(`${e.message}`));
    assert.equal(rsp.toString('hex'), '000000000001ffff', `GET_CAPABILITY: ${rsp.toString()}`);
  } finally {
    c.destroy();
    await s.p.stop();
  }
});
