// QEMU 7.2 (q35, TCG, no disk) boots SeaBIOS with `-tpmdev emulator` on a Unix control
// socket, with tpm-tis and with tpm-crb, once against tswtpm and once against Debian's
// swtpm 0.7.1. The PCRs SeaBIOS extended are read back afterwards (clients.md recipe
// c2) and must be equal: SeaBIOS's measurements are deterministic for one command line.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type Impl,
  type PcrBanks,
  Procs,
  QEMU,
  expectExit,
  freePort,
  kill9,
  qemuArgs,
  qemuSkip,
  seabiosPcrs,
  startUnixTpm,
  waitSeabiosDone,
} from '../helpers/qemu.js';

/** PCR 0, 3, 5, 6, 7: only SeaBIOS's 4-byte zero separator (clients.md §5.c, c2). */
const SEPARATOR_ONLY = 'E21B703EE69C77476BCCB43EC0336A9A1B2914B378944F7B00A10214CA8FEA93';
/** PCR 4: "Calling INT 19h" then the separator. */
const PCR4 = '1EB9AA21337CC1FA31CE5F56900D7BF59B9DDA366823095AED06544CAA2557CA';
const ZERO = '0'.repeat(64);

/** swtpm's tpm-tis result, for the cross-reading test. */
let tisPcrs: PcrBanks | undefined;

const procs = new Procs();
const root = mkdtempSync(join(tmpdir(), 'tswtpm-qemu-seabios-'));
after(async () => {
  await procs.killAll();
  rmSync(root, { recursive: true, force: true });
});

describe('QEMU + SeaBIOS + tswtpm', { skip: qemuSkip({ swtpm: true }) }, () => {
  for (const device of ['tpm-tis', 'tpm-crb'] as const) {
    it(`${device}: SeaBIOS's PCRs equal those of the same run against swtpm`, async (t) => {
      try {
        const ref = await seabiosPcrs(procs, 'swtpm', device, join(root, `${device}-swtpm`));
        const ours = await seabiosPcrs(procs, 'tswtpm', device, join(root, `${device}-tswtpm`));
        t.diagnostic(
          `swtpm: boot ${ref.bootMs} ms, total ${ref.totalMs} ms; ` +
            `tswtpm: boot ${ours.bootMs} ms, total ${ours.totalMs} ms`,
        );
        t.diagnostic(`banks: ${Object.keys(ours.pcrs).join(', ')}`);
        const sha256 = ours.pcrs.sha256;
        assert.ok(sha256 !== undefined, 'sha256 bank allocated');
        for (const i of [0, 3, 5, 6, 7]) assert.equal(sha256[i], SEPARATOR_ONLY, `PCR ${i}`);
        assert.equal(sha256[4], PCR4);
        assert.notEqual(sha256[1], ZERO, 'PCR 1 (SMBIOS, boot order) measured');
        assert.notEqual(sha256[2], ZERO, 'PCR 2 (option ROMs) measured');
        assert.equal(sha256[8], ZERO);
        assert.deepEqual(ours.pcrs, ref.pcrs);
        if (device === 'tpm-tis') tisPcrs = ref.pcrs;
      } finally {
        await procs.killAll();
      }
    });
  }

  it('state written by tswtpm under QEMU reads back the same in swtpm', async (t) => {
    try {
      const dir = join(root, 'cross');
      const ours = await seabiosPcrs(procs, 'tswtpm', 'tpm-tis', dir, { reader: 'swtpm' });
      t.diagnostic(`boot ${ours.bootMs} ms, total ${ours.totalMs} ms`);
      assert.equal(ours.pcrs.sha256?.[0], SEPARATOR_ONLY);
      assert.equal(ours.pcrs.sha256?.[4], PCR4);
      if (tisPcrs !== undefined) assert.deepEqual(ours.pcrs, tisPcrs);
    } finally {
      await procs.killAll();
    }
  });

  it('system_reset: INIT on the running TPM, SeaBIOS measures the same again', async (t) => {
    try {
      const once = await seabiosPcrs(procs, 'tswtpm', 'tpm-tis', join(root, 'once'));
      const reset = await seabiosPcrs(procs, 'tswtpm', 'tpm-tis', join(root, 'reset'), {
        reset: true,
      });
      t.diagnostic(`with reset: total ${reset.totalMs} ms`);
      assert.deepEqual(reset.pcrs, once.pcrs);
    } finally {
      await procs.killAll();
    }
  });

  // clients.md recipe c4: a data socket already exists, so SET_DATAFD is refused with
  // TPM_IOERROR (0x1f); QEMU 7.2 exits 1 and still sends SHUTDOWN, which ends the TPM.
  it('with --server, SET_DATAFD is refused and QEMU exits as with swtpm', async () => {
    try {
      const run = async (impl: Impl) => {
        const dir = join(root, `server-${impl}`);
        mkdirSync(join(dir, 'state'), { recursive: true });
        const ctrl = join(dir, 'ctrl.sock');
        const port = await freePort();
        const tpm = await startUnixTpm(procs, impl, join(dir, 'state'), ctrl, [
          '--server',
          `type=tcp,port=${port}`,
        ]);
        const qemu = procs.spawn(
          `qemu (${impl}, --server)`,
          QEMU,
          qemuArgs({ ctrl, device: 'tpm-tis', debugcon: join(dir, 'debugcon.txt') }),
        );
        const code = await expectExit(qemu, 20_000);
        const tpmCode = await expectExit(tpm, 10_000);
        return { code, tpmCode, err: qemu.output().trim() };
      };
      const ref = await run('swtpm');
      const ours = await run('tswtpm');
      assert.equal(ours.code, 1);
      assert.match(ours.err, /tpm-emulator: Failed to send CMD_SET_DATAFD/);
      assert.equal(ours.tpmCode, 0);
      assert.deepEqual(ours, ref);
    } finally {
      await procs.killAll();
    }
  });

  // libvirt starts swtpm with --terminate: it exits when QEMU dies (data channel EOF).
  it('--terminate: tswtpm exits by itself when QEMU is killed', async () => {
    try {
      const dir = join(root, 'terminate');
      mkdirSync(join(dir, 'state'), { recursive: true });
      const ctrl = join(dir, 'ctrl.sock');
      const debugcon = join(dir, 'debugcon.txt');
      const tpm = await startUnixTpm(procs, 'tswtpm', join(dir, 'state'), ctrl, ['--terminate']);
      const qemu = procs.spawn(
        'qemu (--terminate)',
        QEMU,
        qemuArgs({ ctrl, device: 'tpm-tis', debugcon }),
      );
      await waitSeabiosDone(debugcon, qemu);
      await kill9(qemu);
      assert.equal(await expectExit(tpm, 5_000), 0, tpm.output());
    } finally {
      await procs.killAll();
    }
  });
});
