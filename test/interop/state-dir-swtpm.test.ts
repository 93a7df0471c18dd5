// A state directory moves between tswtpm and Debian's swtpm 0.7.1 in both directions
// and the resumed TPM has the same PCR values (issue 2, acceptance). Unusable state
// files stop tswtpm with a message naming the file, never change on disk, and CMD_INIT
// answers as swtpm does.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  TPM2_SU_CLEAR,
  TPM2_SU_STATE,
  TPM_ST_CLEAR,
  extend12,
  parsePcr12,
  parsePcrRead2,
  parseResponse,
  pcrExtend2,
  pcrRead2,
  pcrRead12,
  saveState12,
  shutdown2,
  startup2,
  startup12,
} from '../../src/protocol/tpm/commands.js';
import {
  type Program,
  RawConn,
  ctrlGetCapability,
  ctrlInit,
  freePort,
  haveSwtpm,
  run,
  startTpm,
  stopAll,
  tempDir,
} from '../helpers/spawn-tswtpm.js';
import { RC, extendedOnce, hex } from '../helpers/tpm-commands.js';

after(stopAll);

const skip = !haveSwtpm && 'Debian swtpm is not installed';
const DIGEST = createHash('sha256').update('state-dir interop').digest();
const DIGEST1 = createHash('sha1').update('state-dir interop').digest();
/** PCR 10 is saved by TPM2_Shutdown(STATE); 16 (debug) and 23 (application) are not. */
const PCRS = [10, 16, 23] as const;

async function readPcrs2(c: RawConn): Promise<Record<number, string>> {
  const out: Record<number, string> = {};
  for (const pcr of PCRS) out[pcr] = hex(parsePcrRead2(await c.transact(pcrRead2(pcr))));
  return out;
}

/** Resumes `dir` with `program` (`--flags not-need-init,startup-state`), reads PCRs. */
async function resume2(program: Program, dir: string): Promise<Record<number, string>> {
  const s = await startTpm({ program, dir, flags: 'not-need-init,startup-state' });
  try {
    const c = await RawConn.connect(s.data!);
    const pcrs = await readPcrs2(c);
    c.destroy();
    return pcrs;
  } finally {
    await s.p.stop();
  }
}

describe('state directory: tswtpm <-> Debian swtpm 0.7.1', { skip }, () => {
  for (const [writer, reader] of [
    ['tswtpm', 'swtpm'],
    ['swtpm', 'tswtpm'],
  ] as const) {
    it(`TPM 2: ${writer} extends PCRs and stores Shutdown(STATE); ${reader} resumes with the same PCR values`, async () => {
      const s = await startTpm({ program: writer, flags: 'not-need-init' });
      const c = await RawConn.connect(s.data!);
      assert.equal(parseResponse(await c.transact(startup2(TPM2_SU_CLEAR))).rc, RC.SUCCESS);
      for (const pcr of PCRS) {
        assert.equal(parseResponse(await c.transact(pcrExtend2(pcr, DIGEST))).rc, RC.SUCCESS);
      }
      const before = await readPcrs2(c);
      for (const pcr of PCRS) assert.equal(before[pcr], hex(extendedOnce(DIGEST)));
      assert.equal(parseResponse(await c.transact(shutdown2(TPM2_SU_STATE))).rc, RC.SUCCESS);
      c.destroy();
      assert.equal((await s.p.stop()).code, 0);

      const copy = tempDir();
      cpSync(s.dir, copy, { recursive: true });
      const byReader = await resume2(reader, s.dir);
      const byWriter = await resume2(writer, copy);
      assert.deepEqual(byReader, byWriter, `${reader} sees what ${writer} itself sees`);
      assert.equal(byReader[10], before[10], 'PCR 10 kept');
      // PCRs without the stateSave attribute are reset by Startup(STATE), in both.
      assert.equal(byReader[16], hex(Buffer.alloc(32)));
      assert.equal(byReader[23], hex(Buffer.alloc(32)));
    });

    it(`TPM 1.2: ${writer} extends PCR 10 and saves state; ${reader} resumes with ST_STATE`, async () => {
      const s = await startTpm({ program: writer, tpm2: false, flags: 'not-need-init' });
      const c = await RawConn.connect(s.data!);
      assert.equal(parseResponse(await c.transact(startup12(TPM_ST_CLEAR))).rc, RC.SUCCESS);
      const value = parsePcr12(await c.transact(extend12(10, DIGEST1)));
      const expected = createHash('sha1').update(Buffer.alloc(20)).update(DIGEST1).digest();
      assert.equal(hex(value), hex(expected));
      assert.equal(parseResponse(await c.transact(saveState12())).rc, RC.SUCCESS);
      c.destroy();
      assert.equal((await s.p.stop()).code, 0);
      assert.ok(readdirSync(s.dir).includes('tpm-00.savestate'));

      const r = await startTpm({
        program: reader,
        tpm2: false,
        dir: s.dir,
        flags: 'not-need-init,startup-state',
      });
      try {
        const c2 = await RawConn.connect(r.data!);
        assert.equal(hex(parsePcr12(await c2.transact(pcrRead12(10)))), hex(expected));
        c2.destroy();
      } finally {
        await r.p.stop();
      }
    });
  }
});

/** Every file of `dir` (except the lock file) with its bytes, or 'dir' for directories. */
function snapshot(dir: string): Record<string, string> {
  const m: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) {
    if (f === '.lock') continue;
    const p = join(dir, f);
    m[f] = statSync(p).isDirectory() ? `dir:${readdirSync(p).join(',')}` : hex(readFileSync(p));
  }
  return m;
}

describe('unusable tpm2-00.permall', () => {
  let good: Buffer;
  before(async () => {
    const s = await startTpm({ flags: 'not-need-init,startup-clear' });
    await s.p.stop();
    good = readFileSync(join(s.dir, 'tpm2-00.permall'));
  });

  const flip = (b: Buffer, at: number) => {
    const c = Buffer.from(b);
    for (let i = at; i < at + 4; i++) c[i] = c[i]! ^ 0xff;
    return c;
  };
  const CASES: ReadonlyArray<{ name: string; make: (dir: string) => void; msg: RegExp }> = [
    {
      // In PERSISTENT_DATA, which libtpms unmarshals and checks.
      name: 'bytes flipped inside the structured part',
      make: (d) => writeFileSync(join(d, 'tpm2-00.permall'), flip(good, 1000)),
      msg: /libtpms rejected the stored state tpm2-00\.permall in dir:\/\//,
    },
    {
      name: 'truncated to half',
      make: (d) => writeFileSync(join(d, 'tpm2-00.permall'), good.subarray(0, good.length >> 1)),
      msg: /cannot decode tpm2-00\.permall in dir:\/\/.*header says \d+ bytes but the blob has \d+/,
    },
    {
      name: 'a directory',
      make: (d) => mkdirSync(join(d, 'tpm2-00.permall')),
      msg: /tpm2-00\.permall.*(EISDIR|directory)/,
    },
  ];

  for (const c of CASES) {
    it(`${c.name}: --flags not-need-init exits 1 naming the file; the file is unchanged`, async () => {
      const dir = tempDir();
      c.make(dir);
      const was = snapshot(dir);
      const args = [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${dir}`,
        '--server',
        `type=tcp,port=${await freePort()}`,
        '--flags',
        'not-need-init',
      ];
      const r = await run('tswtpm', args);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^tswtpm: Could not start the TPM \(result 0x[0-9a-f]+\): /m);
      assert.match(r.stderr, c.msg);
      assert.match(r.stderr, /^tswtpm: Error: Could not initialize libtpms\.$/m);
      assert.deepEqual(snapshot(dir), was, 'nothing written');
      if (haveSwtpm) {
        const theirs = await run('swtpm', args);
        assert.equal(theirs.code, 1, `swtpm refuses it too: ${theirs.stderr}`);
        assert.deepEqual(snapshot(dir), was);
      }
    });

    it(`${c.name}: CMD_INIT answers non-zero (as swtpm), the process keeps serving, file unchanged`, async () => {
      const dir = tempDir();
      c.make(dir);
      const was = snapshot(dir);
      const results: Partial<Record<Program, number>> = {};
      for (const program of haveSwtpm ? (['tswtpm', 'swtpm'] as const) : (['tswtpm'] as const)) {
        const s = await startTpm({ program, dir });
        try {
          results[program] = await ctrlInit(s.ctrl!);
          assert.notEqual(await ctrlGetCapability(s.ctrl!), 0n, `${program} still answers`);
          const d = await RawConn.connect(s.data!);
          // Not running: the fatal-error reply.
          assert.equal(hex(await d.transact(startup2(TPM2_SU_CLEAR))), '80010000000a00000101');
          d.destroy();
          assert.equal(s.p.running, true);
        } finally {
          await s.p.stop();
        }
        assert.deepEqual(snapshot(dir), was, `${program} wrote nothing`);
      }
      assert.notEqual(results.tswtpm, 0);
      if (results.swtpm !== undefined) assert.equal(results.tswtpm, results.swtpm);
    });
  }

  it('bytes flipped in the unchecked middle (NV area): accepted by libtpms, as by swtpm; file unchanged', async () => {
    // libtpms has no integrity check over an unencrypted permall's user NV area; only
    // `--key` (HMAC) detects such damage. Both emulators start; neither writes.
    const dir = tempDir();
    writeFileSync(join(dir, 'tpm2-00.permall'), flip(good, good.length >> 1));
    const was = snapshot(dir);
    for (const program of haveSwtpm ? (['tswtpm', 'swtpm'] as const) : (['tswtpm'] as const)) {
      const s = await startTpm({ program, dir, flags: 'not-need-init' });
      // A control round trip first: swtpm installs its SIGTERM handler only when its
      // main loop starts, a moment after its sockets accept connections.
      assert.notEqual(await ctrlGetCapability(s.ctrl!), 0n);
      assert.equal((await s.p.stop()).code, 0, `${program}: ${s.p.stderr()}`);
      assert.deepEqual(snapshot(dir), was, program);
    }
  });

  it('a missing state directory: CMD_INIT answers 0x09 like swtpm and the process keeps serving', async () => {
    const dir = join(tempDir(), 'does-not-exist');
    for (const program of haveSwtpm ? (['tswtpm', 'swtpm'] as const) : (['tswtpm'] as const)) {
      const s = await startTpm({ program, dir });
      try {
        assert.equal(await ctrlInit(s.ctrl!), 0x09, program);
        assert.notEqual(await ctrlGetCapability(s.ctrl!), 0n);
        assert.equal(s.p.running, true);
      } finally {
        await s.p.stop();
      }
    }
  });
});
