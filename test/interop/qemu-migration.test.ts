// QEMU 7.2 live migration over a Unix migration socket (clients.md recipe d) with a
// SeaBIOS guest (TCG, no disk): the source QEMU's TPM state travels as GET_STATEBLOB /
// SET_STATEBLOB through the migration stream. After the migration the destination TPM's
// PCRs, read back as in recipe c2, must equal the source's: tswtpm → tswtpm, Debian
// swtpm 0.7.1 → tswtpm, tswtpm → swtpm, and tswtpm → tswtpm on one shared state
// directory, where the `.lock` must move from source to destination (§6.4).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type Child,
  type Impl,
  Monitor,
  type PcrBanks,
  Procs,
  QEMU,
  expectExit,
  isSocket,
  kill9,
  lockHolder,
  qemuArgs,
  qemuSkip,
  readBack,
  since,
  startUnixTpm,
  storeAndShutdown,
  waitFor,
  waitSeabiosDone,
} from '../helpers/qemu.js';

const SEPARATOR_ONLY = 'E21B703EE69C77476BCCB43EC0336A9A1B2914B378944F7B00A10214CA8FEA93';
const PCR4 = '1EB9AA21337CC1FA31CE5F56900D7BF59B9DDA366823095AED06544CAA2557CA';

const procs = new Procs();
const root = mkdtempSync(join(tmpdir(), 'tswtpm-qemu-mig-'));
after(async () => {
  await procs.killAll();
  rmSync(root, { recursive: true, force: true });
});

interface Side {
  readonly impl: Impl;
  readonly args?: readonly string[];
}

interface Migration {
  readonly dir: string;
  readonly srcState: string;
  readonly dstState: string;
  readonly srcTpm: Child;
  readonly dstTpm: Child;
  readonly srcCtrl: string;
  readonly dstCtrl: string;
  readonly srcQemu: Child;
  readonly dstQemu: Child;
  readonly srcMon: Monitor;
  readonly dstMon: Monitor;
  /** ms from `migrate` to "completed". */
  readonly migrateMs: number;
}

/**
 * Starts both TPMs and both QEMUs (the destination with -incoming), waits until
 * SeaBIOS on the source is done with the TPM, calls `beforeMigrate`, migrates and
 * waits until the destination VM runs.
 */
async function migrate(
  name: string,
  src: Side,
  dst: Side,
  opts: { shared?: boolean; beforeMigrate?: (m: Omit<Migration, 'migrateMs'>) => void } = {},
): Promise<Migration> {
  const dir = join(root, name);
  const srcState = join(dir, opts.shared ? 'state' : 'src-state');
  const dstState = join(dir, opts.shared ? 'state' : 'dst-state');
  mkdirSync(srcState, { recursive: true });
  mkdirSync(dstState, { recursive: true });
  const srcCtrl = join(dir, 'src-ctrl.sock');
  const dstCtrl = join(dir, 'dst-ctrl.sock');
  const mig = join(dir, 'mig.sock');
  const srcTpm = await startUnixTpm(procs, src.impl, srcState, srcCtrl, src.args);
  const dstTpm = await startUnixTpm(procs, dst.impl, dstState, dstCtrl, dst.args);
  const vm = (side: 'src' | 'dst', ctrl: string, extra: string[]) =>
    procs.spawn(
      `qemu ${side} (${side === 'src' ? src.impl : dst.impl})`,
      QEMU,
      qemuArgs({
        ctrl,
        device: 'tpm-tis',
        debugcon: join(dir, `${side}-debugcon.txt`),
        extra: ['-monitor', `unix:${join(dir, `${side}-mon.sock`)},server=on,wait=off`, ...extra],
      }),
    );
  const srcQemu = vm('src', srcCtrl, []);
  const dstQemu = vm('dst', dstCtrl, ['-incoming', `unix:${mig}`]);
  const srcMon = await Monitor.connect(join(dir, 'src-mon.sock'), srcQemu);
  const dstMon = await Monitor.connect(join(dir, 'dst-mon.sock'), dstQemu);
  await waitSeabiosDone(join(dir, 'src-debugcon.txt'), srcQemu);
  // -incoming listens only once the destination machine is set up.
  await waitFor('the incoming migration socket', () => isSocket(mig) || undefined, 20_000, [
    dstQemu,
  ]);
  const m = { dir, srcState, dstState, srcTpm, dstTpm, srcCtrl, dstCtrl, srcQemu, dstQemu };
  opts.beforeMigrate?.({ ...m, srcMon, dstMon });
  const t0 = Date.now();
  await srcMon.cmd(`migrate -d unix:${mig}`);
  await waitFor(
    'migration to complete',
    async () => {
      const info = await srcMon.cmd('info migrate');
      if (/Migration status: (failed|cancelled)/.test(info)) {
        throw new Error(`${info}\n${srcQemu.output()}\n${dstQemu.output()}`);
      }
      return /Migration status: completed/.test(info) ? true : undefined;
    },
    30_000,
    [srcQemu, dstQemu, srcTpm, dstTpm],
  );
  const migrateMs = since(t0);
  await waitFor(
    'destination VM to run',
    async () => (/VM status: running/.test(await dstMon.cmd('info status')) ? true : undefined),
    10_000,
    [dstQemu],
  );
  assert.match(await srcMon.cmd('info status'), /VM status: paused \(postmigrate\)/);
  return { ...m, srcMon, dstMon, migrateMs };
}

/** QEMU SIGKILLed, volatile state stored, TPM shut down; then recipe c2's read-back. */
async function readAfter(qemu: Child, tpm: Child, ctrl: string, impl: Impl, state: string) {
  await kill9(qemu);
  await storeAndShutdown(tpm, ctrl);
  return readBack(procs, impl, state);
}

function checkSeabios(pcrs: PcrBanks): void {
  const sha256 = pcrs.sha256;
  assert.ok(sha256 !== undefined, 'sha256 bank');
  assert.equal(sha256[0], SEPARATOR_ONLY);
  assert.equal(sha256[4], PCR4);
}

let reference: PcrBanks | undefined;
const endorsementKeys = new Set<string>();
/** Set by the shared-directory test. */
let sourceWroteUnlocked: boolean | undefined;

describe('QEMU live migration with tswtpm', { skip: qemuSkip({ swtpm: true }) }, () => {
  const pairs: ReadonlyArray<readonly [Impl, Impl]> = [
    ['tswtpm', 'tswtpm'],
    ['swtpm', 'tswtpm'],
    ['tswtpm', 'swtpm'],
  ];
  for (const [from, to] of pairs) {
    it(`${from} → ${to}: the destination's PCRs equal the source's`, async (t) => {
      const t0 = Date.now();
      try {
        const m = await migrate(`${from}-${to}`, { impl: from }, { impl: to });
        m.srcMon.close();
        m.dstMon.close();
        const dst = await readAfter(m.dstQemu, m.dstTpm, m.dstCtrl, to, m.dstState);
        const src = await readAfter(m.srcQemu, m.srcTpm, m.srcCtrl, from, m.srcState);
        t.diagnostic(`migration ${m.migrateMs} ms, test ${since(t0)} ms`);
        checkSeabios(dst.pcrs);
        assert.deepEqual(dst.pcrs, src.pcrs);
        assert.equal(dst.ek, src.ek, 'permanent state (endorsement seed) migrated');
        assert.ok(!endorsementKeys.has(src.ek), 'each source TPM has its own seed');
        endorsementKeys.add(src.ek);
        reference ??= src.pcrs;
        assert.deepEqual(dst.pcrs, reference, 'every source had the same SeaBIOS PCRs');
      } finally {
        await procs.killAll();
      }
    });
  }

  it('tswtpm → tswtpm on a shared state dir: the .lock moves to the destination', async (t) => {
    const t0 = Date.now();
    try {
      let srcHeldLock: number | undefined;
      const m = await migrate(
        'shared',
        { impl: 'tswtpm', args: ['--migration', 'release-lock-outgoing'] },
        { impl: 'tswtpm', args: ['--migration', 'incoming'] },
        {
          shared: true,
          beforeMigrate: (x) => {
            srcHeldLock = lockHolder(join(x.srcState, '.lock'));
          },
        },
      );
      const lock = join(m.dstState, '.lock');
      assert.equal(srcHeldLock, m.srcTpm.pid, 'the source locks the state at INIT');
      assert.equal(lockHolder(lock), m.dstTpm.pid, 'the destination holds the lock now');
      const permall = join(m.dstState, 'tpm2-00.permall');
      const before = readFileSync(permall);
      // The source VM ends as after a real migration: `quit` sends CMD_SHUTDOWN.
      await m.srcMon.cmd('quit').catch(() => '');
      m.srcMon.close();
      assert.equal(await expectExit(m.srcQemu, 10_000), 0);
      assert.equal(await expectExit(m.srcTpm, 10_000), 0, m.srcTpm.output());
      assert.equal(lockHolder(lock), m.dstTpm.pid, 'still the destination');
      sourceWroteUnlocked = !before.equals(readFileSync(permall));
      m.dstMon.close();
      const dst = await readAfter(m.dstQemu, m.dstTpm, m.dstCtrl, 'tswtpm', m.dstState);
      t.diagnostic(`migration ${m.migrateMs} ms, test ${since(t0)} ms`);
      checkSeabios(dst.pcrs);
      if (reference !== undefined) assert.deepEqual(dst.pcrs, reference);
    } finally {
      await procs.killAll();
    }
  });

  // clients.md recipe c6 / §6.4: the savestate fetch releases the lock; when the VM
  // resumes instead of ending (failed migration, or `cont`), QEMU sends
  // CMD_LOCK_STORAGE(300) and the TPM must own its state again.
  it('migration fall-back: `cont` re-locks the state with LOCK_STORAGE', async (t) => {
    const t0 = Date.now();
    try {
      const dir = join(root, 'fallback');
      const state = join(dir, 'state');
      mkdirSync(state, { recursive: true });
      const ctrl = join(dir, 'ctrl.sock');
      const debugcon = join(dir, 'debugcon.txt');
      const lock = join(state, '.lock');
      const tpm = await startUnixTpm(procs, 'tswtpm', state, ctrl);
      const qemu = procs.spawn(
        'qemu (fall-back)',
        QEMU,
        qemuArgs({
          ctrl,
          device: 'tpm-tis',
          debugcon,
          extra: ['-monitor', `unix:${join(dir, 'mon.sock')},server=on,wait=off`],
        }),
      );
      const mon = await Monitor.connect(join(dir, 'mon.sock'), qemu);
      await waitSeabiosDone(debugcon, qemu);
      assert.equal(lockHolder(lock), tpm.pid);
      await mon.cmd('migrate -d "exec:cat > /dev/null"');
      await waitFor(
        'migration to complete',
        async () => (/status: completed/.test(await mon.cmd('info migrate')) ? true : undefined),
        30_000,
        [qemu, tpm],
      );
      assert.equal(lockHolder(lock), undefined, 'released after the savestate fetch');
      await mon.cmd('cont');
      assert.match(await mon.cmd('info status'), /VM status: running/);
      await waitFor('LOCK_STORAGE', () => lockHolder(lock), 5_000, [tpm]);
      assert.equal(lockHolder(lock), tpm.pid);
      // The TPM still serves the guest: a reset makes SeaBIOS measure again.
      await mon.cmd('system_reset');
      await waitSeabiosDone(debugcon, qemu, 60_000, 2);
      mon.close();
      const after = await readAfter(qemu, tpm, ctrl, 'tswtpm', state);
      t.diagnostic(`test ${since(t0)} ms`);
      checkSeabios(after.pcrs);
    } finally {
      await procs.killAll();
    }
  });

  // §6.4: once the source released the lock (after the savestate fetch) the state
  // belongs to the destination: the source's automatic TPM2_Shutdown on QEMU's
  // CMD_SHUTDOWN must not rewrite tpm2-00.permall on the shared directory.
  it('the source does not write the shared state after it released the lock', () => {
    assert.equal(sourceWroteUnlocked, false);
  });
});
