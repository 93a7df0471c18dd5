import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { TpmClient } from '../../src/client/index.js';
import { nvDefineSpace2, nvRead2, nvWrite2 } from '../../src/protocol/tpm/commands.js';
import { startTcp, tempDir } from '../helpers/procs.js';

// Issue 10: a state write that fails during a TPM command (here: a full file system,
// a real tmpfs of 64 KiB) is logged with the file, the operation and the errno, once;
// the previous permall stays intact and loads in a fresh process. Only ENOSPC is
// injected: no dm-error or fault-injecting file system is available here for EIO.

const work = tempDir();
const mnt = join(work.path, 'mnt');
mkdirSync(mnt);

/** Why the test cannot run, or undefined when a tmpfs was mounted at `mnt`. */
function mountTmpfs(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
  return r.status === 0 ? undefined : `mount -t tmpfs failed: ${r.stderr.toString().trim()}`;
}
const skip = mountTmpfs();
after(() => {
  if (skip === undefined) spawnSync('umount', [mnt]);
  work.remove();
});

const NV_INDEX = 0x01500040;
const SIZE = 1024;
const rc = (r: Uint8Array) => Buffer.from(r).readUInt32BE(6);

/** Fills the file system holding `dir` up to the last byte. */
function fill(dir: string): void {
  const fd = openSync(join(dir, 'filler'), 'w');
  const chunk = Buffer.alloc(4096, 0xee);
  try {
    for (let size = chunk.length; size > 0; ) {
      try {
        writeSync(fd, chunk, 0, size);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        size >>= 1;
      }
    }
  } finally {
    closeSync(fd);
  }
}

describe('a full file system under the state directory', { skip }, () => {
  for (const opts of ['', ',backup']) {
    test(`dir=D${opts}: ENOSPC on an NV write is logged; the old permall loads`, async () => {
      const dir = join(mnt, `d${opts.replace(',', '-')}`);
      mkdirSync(dir);
      const log = join(work.path, `log${opts.replace(',', '-')}`);
      const args = ['--tpm2', '--tpmstate', `dir=${dir}${opts}`, '--log', `file=${log}`];
      const s = await startTcp('tswtpm', [...args, '--flags', 'not-need-init,startup-clear']);
      const tpm = new TpmClient({ port: s.port }, { timeoutMs: 10000 });
      const first = Buffer.alloc(SIZE, 0x11);
      let permall: Buffer;
      try {
        assert.equal(rc(await tpm.transmit(nvDefineSpace2(NV_INDEX, SIZE))), 0);
        for (let off = 0; off < SIZE; off += 512) {
          const w = nvWrite2(NV_INDEX, first.subarray(off, off + 512), off);
          assert.equal(rc(await tpm.transmit(w)), 0);
        }
        permall = readFileSync(join(dir, 'tpm2-00.permall'));
        fill(mnt);
        const r = await tpm.transmit(nvWrite2(NV_INDEX, Buffer.alloc(512, 0x22)));
        assert.notEqual(rc(r), 0, 'the write that could not be stored fails');
      } finally {
        await tpm.close();
        await s.stop();
      }
      const lines = readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.includes('ENOSPC'));
      assert.equal(lines.length, 1, `one line for the failed write:\n${lines.join('\n')}`);
      assert.match(
        lines[0] ?? '',
        /TPM2_NV_Write \(0x137\) could not save the TPM state: could not store tpm2-00\.permall in dir:\/\/.*: (open|write)\(.*\/TMP2-00\.permall\) failed: ENOSPC: no space left on device/,
      );
      assert.deepEqual(readFileSync(join(dir, 'tpm2-00.permall')), permall, 'permall intact');

      // A fresh process (on a copy outside the full file system) loads that permall.
      const copy = join(work.path, `copy${opts.replace(',', '-')}`);
      cpSync(dir, copy, { recursive: true });
      rmSync(join(mnt, 'filler'));
      const again = await startTcp('tswtpm', [
        '--tpm2',
        '--tpmstate',
        `dir=${copy}${opts}`,
        '--flags',
        'not-need-init,startup-clear',
      ]);
      const t2 = new TpmClient({ port: again.port }, { timeoutMs: 10000 });
      try {
        const r = await t2.transmit(nvRead2(NV_INDEX, 512, 0));
        assert.equal(rc(r), 0);
        assert.deepEqual(r.subarray(16, 16 + 512), first.subarray(0, 512), 'the old NV data');
      } finally {
        await t2.close();
        await again.stop();
      }
    });
  }
});
