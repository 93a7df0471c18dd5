// Many TPMs in one process (issue 12): each runs on its own copy of libtpms, so keys,
// PCRs, NV indices, state files, failure mode and the control channel (locality,
// hash sequence, CANCEL) belong to one TPM and never show up in another.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ControlClient, type InProcessTpm, startTpmInProcess, tpm2 } from '../../src/index.js';
import { createEkRsa2, nvReadPublic } from '../helpers/ek.js';
import { startTcp, tempDir } from '../helpers/procs.js';
import { createPrimaryRsaRandom, extendedOnce, sha256 } from '../helpers/tpm-commands.js';

const rc = (rsp: Uint8Array) => Buffer.from(rsp).readUInt32BE(6);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TPM_RC_HANDLE_1 = 0x18b;
const TPM_RC_FAILURE = 0x101;
const TPM_RC_LOCALITY = 0x907;
const TPM_RC_CANCELED = 0x909;
const NV_INDEX = 0x01500020;

async function ekModulus(t: InProcessTpm): Promise<string> {
  const r = await t.tpm.transmit(createEkRsa2());
  assert.equal(rc(r), 0, 'EK CreatePrimary succeeds');
  const { handle, modulus } = tpm2.parseCreatePrimaryRsa(r);
  assert.equal(rc(await t.tpm.transmit(tpm2.flushContext(handle))), 0);
  return hex(modulus);
}

const work = tempDir();
after(() => work.remove());

for (const n of [2, 10]) {
  test(`${n} TPMs in one process: own EK, PCRs, NV indices and state files`, async () => {
    const dirs = Array.from({ length: n }, (_, i) => join(work.path, `n${n}-${i}`));
    for (const d of dirs) mkdirSync(d);
    const start = () => Promise.all(dirs.map((stateDir) => startTpmInProcess({ stateDir })));
    let tpms = await start();
    let eks: string[];
    try {
      // Concurrently: the CreatePrimary calls run on the libuv pool side by side.
      eks = await Promise.all(tpms.map(ekModulus));
      assert.equal(new Set(eks).size, n, 'every TPM has its own endorsement seed');
      const digests = tpms.map((_, i) => sha256(Buffer.from(`tpm ${i}`)));
      for (const [i, t] of tpms.entries()) {
        assert.equal(rc(await t.tpm.transmit(tpm2.pcrExtend(16, digests[i]!))), 0);
      }
      for (const [i, t] of tpms.entries()) {
        const v = tpm2.parsePcrRead(await t.tpm.transmit(tpm2.pcrRead(16)));
        assert.deepEqual(v, extendedOnce(digests[i]!), `PCR 16 of TPM ${i} saw only its extend`);
      }
      // The NV index exists in the even-numbered TPMs only.
      for (const [i, t] of tpms.entries()) {
        if (i % 2 === 0)
          assert.equal(rc(await t.tpm.transmit(tpm2.nvDefineSpace(NV_INDEX, 64))), 0);
      }
      for (const [i, t] of tpms.entries()) {
        const r = rc(await t.tpm.transmit(nvReadPublic(NV_INDEX)));
        assert.equal(r, i % 2 === 0 ? 0 : TPM_RC_HANDLE_1, `NV index in TPM ${i}`);
      }
      const files = dirs.map((d) => hex(readFileSync(join(d, 'tpm2-00.permall'))));
      assert.equal(new Set(files).size, n, 'every TPM writes its own state file');
    } finally {
      await Promise.all(tpms.map((t) => t.close()));
    }
    // Each state file holds its own TPM: restarted (in another order, from other copies
    // of libtpms), every TPM has its EK and NV index back.
    dirs.reverse();
    eks.reverse();
    tpms = await start();
    try {
      assert.deepEqual(await Promise.all(tpms.map(ekModulus)), eks);
      for (const [j, t] of tpms.entries()) {
        const i = n - 1 - j;
        const r = rc(await t.tpm.transmit(nvReadPublic(NV_INDEX)));
        assert.equal(r, i % 2 === 0 ? 0 : TPM_RC_HANDLE_1, `NV index in TPM ${i} after restart`);
      }
    } finally {
      await Promise.all(tpms.map((t) => t.close()));
    }
  });
}

test('a TPM whose state directory fails enters failure mode alone', async () => {
  const [bad, ...good] = await Promise.all([0, 1, 2].map(() => startTpmInProcess()));
  try {
    // A real failing directory: the state file can no longer be written.
    rmSync(bad!.stateDir, { recursive: true, force: true });
    assert.equal(rc(await bad!.tpm.transmit(tpm2.nvDefineSpace(NV_INDEX, 64))), TPM_RC_FAILURE);
    assert.equal(rc(await bad!.tpm.transmit(tpm2.getRandom(8))), TPM_RC_FAILURE, 'failure mode');
    for (const t of good) {
      const before = readFileSync(join(t.stateDir, 'tpm2-00.permall'));
      assert.equal(rc(await t.tpm.transmit(tpm2.nvDefineSpace(NV_INDEX, 64))), 0);
      assert.equal(rc(await t.tpm.transmit(tpm2.getRandom(8))), 0);
      const now = readFileSync(join(t.stateDir, 'tpm2-00.permall'));
      assert.notDeepEqual(now, before, 'the neighbour still writes its state');
      assert.equal(rc(await t.tpm.transmit(createEkRsa2())), 0);
    }
  } finally {
    await Promise.all([bad!, ...good].map((t) => t.close()));
  }
});

describe('control commands reach their own TPM only', () => {
  let a: InProcessTpm;
  let b: InProcessTpm;
  test('start two', async () => {
    [a, b] = await Promise.all([startTpmInProcess(), startTpmInProcess()]);
  });
  after(() => Promise.all([a?.close(), b?.close()]));

  test('SET_LOCALITY', async () => {
    // PCR 21 is resettable from locality 2 only (libtpms' PC Client PCR attributes).
    await a.control.setLocality(2);
    assert.equal(rc(await a.tpm.transmit(tpm2.pcrReset(21))), 0);
    assert.equal(rc(await b.tpm.transmit(tpm2.pcrReset(21))), TPM_RC_LOCALITY);
    await a.control.setLocality(0);
  });

  test('HASH_START/DATA/END: PCR 17 and the established bit', async () => {
    const pcr17 = async (t: InProcessTpm) =>
      hex(tpm2.parsePcrRead(await t.tpm.transmit(tpm2.pcrRead(17))));
    assert.equal(await pcr17(b), 'ff'.repeat(32));
    await a.control.hash(Buffer.from('measured launch'));
    assert.equal(await a.control.getTpmEstablished(), true);
    assert.equal(await b.control.getTpmEstablished(), false);
    const inner = sha256(Buffer.from('measured launch'));
    assert.equal(await pcr17(a), hex(extendedOnce(inner)));
    assert.equal(await pcr17(b), 'ff'.repeat(32), "B's PCR 17 is untouched");
  });

  test('CANCEL_TPM_CMD cancels the command of its TPM, not the neighbour running alongside', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const ra = a.tpm.transmit(createPrimaryRsaRandom(3072));
      const rb = b.tpm.transmit(createPrimaryRsaRandom(3072));
      await sleep(10);
      await a.control.cancelTpmCmd();
      const [xa, xb] = await Promise.all([ra, rb]);
      seen.push(`${rc(xa).toString(16)}/${rc(xb).toString(16)}`);
      assert.equal(rc(xb), 0, `B's key generation is not cancelled (${seen})`);
      await b.tpm.transmit(tpm2.flushContext(tpm2.parseCreatePrimary(xb).handle));
      if (rc(xa) === TPM_RC_CANCELED) return;
      assert.equal(rc(xa), 0);
      await a.tpm.transmit(tpm2.flushContext(tpm2.parseCreatePrimary(xa).handle));
    }
    assert.fail(`A's key was always ready before the cancel: ${seen}`);
  });
});

test('a second TPM of the process on the same state directory is refused', async () => {
  const dir = join(work.path, 'shared');
  mkdirSync(dir);
  const a = await startTpmInProcess({ stateDir: dir });
  try {
    await assert.rejects(startTpmInProcess({ stateDir: dir }), /Could not initialize libtpms/);
    // The refused attempt opened and closed the lock file: A's lock survives that.
    const swtpm = await startTcp('swtpm', ['--tpm2', '--tpmstate', `dir=${dir}`]);
    const client = new ControlClient({ port: swtpm.ctrlPort });
    try {
      await assert.rejects(client.init(), /TPM_FAIL|0x9\b/, 'C swtpm cannot lock the state');
    } finally {
      await client.close();
      await swtpm.stop();
    }
    assert.equal(rc(await a.tpm.transmit(tpm2.getRandom(8))), 0);
  } finally {
    await a.close();
  }
});

test("a TPM's --pcap capture holds its own traffic, not its neighbour's", async () => {
  const file = join(work.path, 'a.pcapng');
  const [a, b] = await Promise.all([
    startTpmInProcess({ args: ['--pcap', `file=${file}`] }),
    startTpmInProcess(),
  ]);
  try {
    assert.equal(rc(await a.tpm.transmit(tpm2.getRandom(0x22))), 0);
    assert.equal(rc(await b.tpm.transmit(tpm2.getRandom(0x33))), 0);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  const pcap = readFileSync(file);
  assert.ok(pcap.includes(tpm2.getRandom(0x22)), "A's command is captured");
  assert.ok(!pcap.includes(tpm2.getRandom(0x33)), "B's command is not in A's capture");
});
