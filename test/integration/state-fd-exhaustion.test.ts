import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { after, test } from 'node:test';
import { TpmClient } from '../../src/client/index.js';
import { nvDefineSpace2, nvRead2, nvWrite2 } from '../../src/protocol/tpm/commands.js';
import { TSWTPM_BIN, freePortPair, startTcp, tempDir, waitForPort } from '../helpers/procs.js';

// Issue 10: running out of fds must never become a lost state write. Once the server
// serves, its RLIMIT_NOFILE is lowered (prlimit --pid) to its lowest free fd number, so
// every fd number it may use is taken and the next open() fails with EMFILE for real.
// (Holding control connections no longer fills the table: the listeners accept one
// client at a time and leave the rest in the kernel backlog.) The directory backend
// keeps one fd in reserve (an open /dev/null) that it gives up for a state file when
// open() fails with EMFILE.

const LIMIT = 64;
const NV_INDEX = 0x01500050;
const HAVE_PRLIMIT = spawnSync('prlimit', ['--version']).status === 0;
const work = tempDir();
after(() => work.remove());
const rc = (r: Uint8Array) => Buffer.from(r).readUInt32BE(6);

/** The lowest fd number not in use in process `pid`. */
function lowestFree(pid: number): number {
  const used = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  let fd = 0;
  while (used.has(fd)) fd++;
  return fd;
}

test(
  'an NV write is stored while the server has no fd left (RLIMIT_NOFILE 64)',
  { skip: !HAVE_PRLIMIT && 'no prlimit (util-linux)' },
  async () => {
    const port = await freePortPair();
    const args = ['--tpm2', '--tpmstate', `dir=${work.path}`];
    const proc = spawn(
      'prlimit',
      [
        `--nofile=${LIMIT}:${LIMIT}`,
        process.execPath,
        TSWTPM_BIN,
        'socket',
        ...args,
        '--flags',
        'not-need-init,startup-clear',
        '--server',
        `type=tcp,port=${port}`,
        '--ctrl',
        `type=tcp,port=${port + 1}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise((r) => proc.once('exit', r));
    const tpm = new TpmClient({ port }, { timeoutMs: 10000 });
    try {
      await waitForPort(port + 1, proc);
      assert.equal(rc(await tpm.transmit(nvDefineSpace2(NV_INDEX, 8))), 0);
      assert.equal(rc(await tpm.transmit(nvWrite2(NV_INDEX, Buffer.alloc(8, 0xaa)))), 0);

      // prlimit's child is the server (prlimit execs it).
      const pid = proc.pid as number;
      const full = lowestFree(pid);
      assert.ok(full < LIMIT);
      const lowered = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${full}:${full}`]);
      assert.equal(lowered.status, 0, lowered.stderr.toString());
      assert.equal(lowestFree(pid), full, 'the server has no fd number left below its limit');

      const w = await tpm.transmit(nvWrite2(NV_INDEX, Buffer.alloc(8, 0xbb)));
      assert.equal(rc(w), 0, `the write was stored; server said: ${stderr}`);
      assert.equal(lowestFree(pid), full, 'the table was still full after the write');
      assert.doesNotMatch(stderr, /could not save/);
    } finally {
      await tpm.close();
      proc.kill('SIGTERM');
      await exited;
    }

    // A fresh process reads what was stored.
    const again = await startTcp('tswtpm', [...args, '--flags', 'not-need-init,startup-clear']);
    const t2 = new TpmClient({ port: again.port }, { timeoutMs: 10000 });
    try {
      const r = await t2.transmit(nvRead2(NV_INDEX, 8, 0));
      assert.equal(rc(r), 0);
      assert.deepEqual(r.subarray(16, 24), Buffer.alloc(8, 0xbb));
    } finally {
      await t2.close();
      await again.stop();
    }
  },
);
