import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TpmClient } from '../../src/client/index.js';
import { nvDefineSpace2, startup2 } from '../../src/protocol/tpm/commands.js';
import { KILL_AFTER_STEP_ENV } from '../../src/storage/crash-hook.js';
import { ekModulus } from '../helpers/ek.js';
import { TSWTPM_BIN, freePortPair, startTcp, tempDir, waitForPort } from '../helpers/procs.js';

// Issue 10: a SIGKILL at any step of a permall write under `backup` must never lose
// the TPM's identity. The crash is injected deterministically: the test hook
// TSWTPM_TEST_KILL_AFTER_STEP=permall:N (src/storage/crash-hook.ts) makes the server
// SIGKILL itself right after step N of its first permall write. After each crash, a
// normal start must present the same endorsement key as before.

const work = tempDir();
after(() => work.remove());

const flagsOf = (opts: string) => ['--tpm2', '--tpmstate', `dir=DIR,${opts}`];
const withDir = (args: string[], dir: string) => args.map((a) => a.replace('DIR', dir));

/**
 * Starts tswtpm with the crash hook, makes it write permall (TPM2_Startup and
 * NV_DefineSpace both do), and resolves with how the process ended: 'SIGKILL' when
 * the hook fired, 'survived' when the write had fewer than `step` steps.
 */
async function crashAt(dir: string, args: string[], step: number): Promise<'SIGKILL' | 'survived'> {
  const port = await freePortPair();
  const proc = spawn(
    process.execPath,
    [
      TSWTPM_BIN,
      'socket',
      ...withDir(args, dir),
      '--flags',
      'not-need-init',
      '--server',
      `type=tcp,port=${port}`,
      '--ctrl',
      `type=tcp,port=${port + 1}`,
    ],
    { stdio: 'ignore', env: { ...process.env, [KILL_AFTER_STEP_ENV]: `permall:${step}` } },
  );
  const exited = new Promise<NodeJS.Signals | null>((r) => proc.once('exit', (_c, s) => r(s)));
  let answered = false;
  try {
    await waitForPort(port, proc);
    const tpm = new TpmClient({ port }, { timeoutMs: 20000 });
    try {
      await tpm.transmit(startup2());
      await tpm.transmit(nvDefineSpace2(0x01500020 + step, 8));
      answered = true;
    } finally {
      await tpm.close().catch(() => {});
    }
  } catch {
    // the connection (or the start itself) died with the process
  }
  if (answered) {
    proc.kill('SIGTERM');
    await exited;
    return 'survived';
  }
  const signal = await exited;
  assert.equal(signal, 'SIGKILL', `step ${step}: the server ended by ${signal}, not the hook`);
  return 'SIGKILL';
}

// temp-created, temp-written, [temp-synced], temp-closed, backup-linked, backup-renamed,
// renamed, [dir-synced]
for (const [opts, steps] of [
  ['backup', 6],
  ['backup,fsync', 8],
] as const) {
  test(`--tpmstate dir=D,${opts}: SIGKILL after every step of a permall write keeps the EK`, async () => {
    const args = flagsOf(opts);
    const base = join(work.path, `${opts.replace(',', '-')}-base`);
    mkdirSync(base);
    const first = await startTcp('tswtpm', [
      ...withDir(args, base),
      '--flags',
      'not-need-init,startup-clear',
    ]);
    const ek = await ekModulus(first.port);
    assert.equal(await first.stop(), 0);
    assert.ok(existsSync(join(base, 'tpm2-00.permall.bak')), 'the baseline has a backup');

    let crashed = 0;
    for (let step = 1; ; step++) {
      const dir = join(work.path, `${opts.replace(',', '-')}-step${step}`);
      cpSync(base, dir, { recursive: true });
      if ((await crashAt(dir, args, step)) === 'survived') break;
      crashed++;
      const files = readdirSync(dir).sort().join(' ');
      const again = await startTcp('tswtpm', [
        ...withDir(args, dir),
        '--flags',
        'not-need-init,startup-clear',
      ]);
      try {
        assert.equal(await ekModulus(again.port), ek, `step ${step} (files: ${files}): EK changed`);
      } finally {
        await again.stop();
      }
      assert.ok(existsSync(join(dir, 'tpm2-00.permall')), `step ${step}: a permall exists`);
    }
    assert.equal(crashed, steps, 'every step of the write was crashed once');
  });
}
