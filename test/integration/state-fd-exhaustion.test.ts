import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { after, test } from 'node:test';
import { TpmClient } from '../../src/client/index.js';
import { nvDefineSpace2, nvRead2, nvWrite2 } from '../../src/protocol/tpm/commands.js';
import { TSWTPM_BIN, freePortPair, startTcp, tempDir, waitForPort } from '../helpers/procs.js';

// Issue 10: running out of fds must never become a lost state write. The server runs
// with RLIMIT_NOFILE 64 (prlimit) and its fd table is filled for real with control
// connections it accepts and holds. The directory backend keeps one fd in reserve
// (an open /dev/null) that it gives up for a state file when open() fails with EMFILE.

const LIMIT = 64;
const NV_INDEX = 0x01500050;
const HAVE_PRLIMIT = spawnSync('prlimit', ['--version']).status === 0;
const work = tempDir();
after(() => work.remove());
const rc = (r: Uint8Array) => Buffer.from(r).readUInt32BE(6);

/** True when every fd number below LIMIT is in use in process `pid`. */
function tableFull(pid: number): boolean {
  const used = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  for (let fd = 0; fd < LIMIT; fd++) if (!used.has(fd)) return false;
  return true;
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
    const hogs: net.Socket[] = [];
    const tpm = new TpmClient({ port }, { timeoutMs: 10000 });
    try {
      await waitForPort(port + 1, proc);
      assert.equal(rc(await tpm.transmit(nvDefineSpace2(NV_INDEX, 8))), 0);
      assert.equal(rc(await tpm.transmit(nvWrite2(NV_INDEX, Buffer.alloc(8, 0xaa)))), 0);

      // Control connections until the server's fd table is full (each held open).
      const pid = proc.pid as number;
      for (let i = 0; i < 4 * LIMIT && !tableFull(pid); i++) {
        const s = net.connect(port + 1, '127.0.0.1');
        s.on('error', () => {});
        hogs.push(s);
        await new Promise((r) => s.once('connect', r));
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(tableFull(pid), 'the server has no free fd');

      const w = await tpm.transmit(nvWrite2(NV_INDEX, Buffer.alloc(8, 0xbb)));
      assert.equal(rc(w), 0, `the write was stored; server said: ${stderr}`);
      assert.ok(tableFull(pid), 'the table was still full during the write');
      assert.doesNotMatch(stderr, /could not save/);
    } finally {
      for (const s of hogs) s.destroy();
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
