// Crash safety with many TPMs in one process (issue 12): a child holds ten in-process
// TPMs that all write NV state at once and is SIGKILLed at a random moment. Every
// state directory must then load in Debian's swtpm, with each counter at or past
// the last increment the child saw acknowledged. Repeated over several kills with a
// fixed seed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TpmClient } from '../../src/client/index.js';
import { nvRead2 } from '../../src/protocol/tpm/commands.js';
import { CRASH_NV_INDEX } from '../helpers/instances-child.js';
import { startTcp, tempDir } from '../helpers/procs.js';
import { haveSwtpm } from '../helpers/spawn-tswtpm.js';

const CHILD = fileURLToPath(new URL('../helpers/instances-child.js', import.meta.url));
const TPMS = 10;
const ROUNDS = 3;
const rc = (r: Uint8Array) => Buffer.from(r).readUInt32BE(6);

const work = tempDir();
after(() => work.remove());

/** Runs the child until `killAfter` acknowledged increments (over all TPMs), then SIGKILLs it. */
async function runAndKill(dirs: string[], killAfter: number, acked: bigint[]): Promise<void> {
  // The child's socket directories go under `work`: SIGKILL leaves them behind (10 per
  // round in the machine's TMPDIR before).
  const child = spawn(process.execPath, [CHILD, ...dirs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TMPDIR: work.path },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let seen = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    if (line === 'ready') continue;
    const [i, v] = line.split(' ');
    acked[Number(i)] = BigInt(v!);
    if (++seen === killAfter) child.kill('SIGKILL');
  }
  await exited;
  assert.equal(child.signalCode, 'SIGKILL', `the child died by itself: ${stderr}`);
}

test(
  'SIGKILL of a process with 10 TPMs writing NV leaves 10 valid state directories',
  {
    skip: !haveSwtpm && 'Debian swtpm is not installed',
  },
  async (t) => {
    const dirs = Array.from({ length: TPMS }, (_, i) => join(work.path, `tpm${i}`));
    for (const d of dirs) mkdirSync(d);
    const acked: bigint[] = dirs.map(() => 0n);
    let seed = 0x1d872b41;
    for (let round = 0; round < ROUNDS; round++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      await runAndKill(dirs, 50 + (seed % 400), acked);
      // Each state directory, alone, in C swtpm.
      for (const [i, dir] of dirs.entries()) {
        const s = await startTcp('swtpm', [
          '--tpm2',
          '--tpmstate',
          `dir=${dir}`,
          '--flags',
          'not-need-init,startup-clear',
        ]);
        const tpm = new TpmClient({ port: s.port }, { timeoutMs: 5000 });
        try {
          const r = await tpm.transmit(nvRead2(CRASH_NV_INDEX, 8));
          assert.equal(rc(r), 0, `round ${round}: TPM ${i}'s counter reads in swtpm`);
          const value = Buffer.from(r).readBigUInt64BE(16);
          assert.ok(
            value >= acked[i]!,
            `TPM ${i}: counter ${value} behind acknowledged ${acked[i]}`,
          );
        } finally {
          await tpm.close();
          await s.stop();
        }
      }
    }
    t.diagnostic(`counters after ${ROUNDS} kills: ${acked.join(' ')}`);
  },
);
