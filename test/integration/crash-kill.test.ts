import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TpmClient } from '../../src/client/index.js';
import { startTcp, tempDir } from '../helpers/procs.js';

// Crash safety (issue 5): SIGKILL at random moments while every command changes NV
// state (an NV counter increment rewrites tpm2-00.permall). After each kill the state
// must load, and the counter must never go back behind an acknowledged increment.

const NV_INDEX = 0x01500016;
const TPM_RS_PW = 0x40000009;
const TPM_RH_OWNER = 0x40000001;
// TPMA_NV: OWNERWRITE | AUTHWRITE | TPM_NT_COUNTER << 4 | OWNERREAD | AUTHREAD | NO_DA
// (NO_DA: every SIGKILL is an unorderly shutdown, which would count as a DA failure)
const NV_ATTRS = 0x2 | 0x4 | 0x10 | 0x20000 | 0x40000 | 0x2000000;

function cmd(tag: number, cc: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const h = Buffer.alloc(10);
  h.writeUInt16BE(tag, 0);
  h.writeUInt32BE(10 + body.length, 2);
  h.writeUInt32BE(cc, 6);
  return Buffer.concat([h, body]);
}
const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const pw = () => Buffer.concat([u32(9), u32(TPM_RS_PW), u16(0), Buffer.from([0]), u16(0)]);

const defineCounter = () => {
  const pub = Buffer.concat([u32(NV_INDEX), u16(0x000b), u32(NV_ATTRS), u16(0), u16(8)]);
  return cmd(0x8002, 0x12a, u32(TPM_RH_OWNER), pw(), u16(0), u16(pub.length), pub);
};
const increment = () => cmd(0x8002, 0x134, u32(NV_INDEX), u32(NV_INDEX), pw());
const readCounter = () => cmd(0x8002, 0x14e, u32(NV_INDEX), u32(NV_INDEX), pw(), u16(8), u16(0));
const rc = (rsp: Uint8Array) => Buffer.from(rsp).readUInt32BE(6);

/** Sends `c`, repeating it while the TPM answers TPM_RC_RETRY (0x922). */
async function send(tpm: TpmClient, c: Buffer): Promise<Uint8Array> {
  for (;;) {
    const r = await tpm.transmit(c);
    if (rc(r) !== 0x922) return r;
  }
}

const work = tempDir();
after(() => work.remove());

test('SIGKILL during 200+ state-changing commands never leaves an unloadable state', async (t) => {
  const args = [
    '--tpm2',
    '--tpmstate',
    `dir=${work.path}`,
    '--flags',
    'not-need-init,startup-clear',
  ];
  let acknowledged = 0n;
  let rounds = 0;
  let commands = 0;
  let defined = false;
  // A fixed seed keeps failures reproducible.
  let seed = 0x2545f491;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 12 || commands < 200; round++) {
    const s = await startTcp('tswtpm', args);
    rounds++;
    const tpm = new TpmClient({ port: s.port }, { timeoutMs: 5000 });
    try {
      if (!defined) {
        assert.equal(rc(await send(tpm, defineCounter())), 0);
        assert.equal(rc(await send(tpm, increment())), 0);
        defined = true;
      }
      const r = await send(tpm, readCounter());
      assert.equal(rc(r), 0, `round ${round}: the counter is readable after a restart`);
      const value = Buffer.from(r).readBigUInt64BE(16);
      assert.ok(value >= acknowledged, `counter ${value} went back behind ${acknowledged}`);
      acknowledged = value;
      // Increment until killed at a random moment (0-40 ms in).
      const killAt = rand(40);
      const timer = setTimeout(() => s.proc.kill('SIGKILL'), killAt);
      try {
        for (;;) {
          const x = await send(tpm, increment());
          commands++;
          if (rc(x) === 0) acknowledged++;
        }
      } catch {
        // The connection died with the process.
      } finally {
        clearTimeout(timer);
      }
    } finally {
      await tpm.close();
      await s.stop('SIGKILL');
    }
  }
  assert.ok(commands >= 200, `only ${commands} commands ran`);
  t.diagnostic(`${commands} NV increments over ${rounds} SIGKILLed runs`);
  const s = await startTcp('tswtpm', args);
  try {
    const tpm = new TpmClient({ port: s.port });
    const r = await send(tpm, readCounter());
    assert.equal(rc(r), 0);
    assert.ok(Buffer.from(r).readBigUInt64BE(16) >= acknowledged);
    await tpm.close();
  } finally {
    await s.stop();
  }
});
