// TPM 1.2 end to end: tswtpm_setup (in process and driving C swtpm) with every TPM 1.2
// option against Debian's swtpm_setup: the same log lines, and states in which C swtpm
// reports an owner and the same NV indices (EK and platform certificate, NV lock).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TpmClient } from '../../src/client/tpm.js';
import { startTcp, tempDir } from '../helpers/procs.js';
import { normalizeLog, privateConfig, runSetup } from '../helpers/setup-peers.js';

const tmp = tempDir('setup-tpm12-');
let conf = '';
before(() => {
  conf = privateConfig(tmp.path);
});
after(() => tmp.remove());

/** TPM_GetCapability(capArea, subCap) → the response's data part. */
function getCap(capArea: number, subCap?: number): Buffer {
  const sub = subCap === undefined ? Buffer.alloc(0) : Buffer.alloc(4);
  if (subCap !== undefined) sub.writeUInt32BE(subCap);
  const b = Buffer.alloc(18 + sub.length);
  b.writeUInt16BE(0x00c1, 0);
  b.writeUInt32BE(b.length, 2);
  b.writeUInt32BE(0x65, 6); // TPM_ORD_GetCapability
  b.writeUInt32BE(capArea, 10);
  b.writeUInt32BE(sub.length, 14);
  sub.copy(b, 18);
  return b;
}

/** What C swtpm says about a TPM 1.2 state: owner flag and the NV index list. */
async function tpm12Facts(dir: string): Promise<{ owner: string; nv: string }> {
  const s = await startTcp('swtpm', [
    '--tpmstate',
    `dir=${dir}`,
    '--flags',
    'not-need-init,startup-clear',
  ]);
  const tpm = new TpmClient({ port: s.port });
  try {
    const own = await tpm.transmit(getCap(5, 0x111)); // TPM_CAP_PROPERTY, TPM_CAP_PROP_OWNER
    const nv = await tpm.transmit(getCap(0x0d)); // TPM_CAP_NV_LIST
    assert.equal(own.readUInt32BE(6), 0);
    assert.equal(nv.readUInt32BE(6), 0);
    return { owner: own.subarray(14).toString('hex'), nv: nv.subarray(14).toString('hex') };
  } finally {
    await tpm.close();
    await s.stop();
  }
}

test('TPM 1.2: EK, ownership, certificates, NV lock: same lines and state as swtpm_setup', async () => {
  const args = [
    '--createek',
    '--take-ownership',
    '--create-ek-cert',
    '--create-platform-cert',
    '--lock-nvram',
    '--vmid',
    'x',
  ];
  const logs: string[][] = [];
  const facts: Array<{ owner: string; nv: string }> = [];
  for (const peer of ['c', 'ts', 'ts-on-c'] as const) {
    const dir = join(tmp.path, peer);
    mkdirSync(dir);
    const r = await runSetup(peer, ['--tpm-state', dir, '--config', conf, ...args]);
    assert.equal(r.code, 0, `${peer}: ${r.stdout}${r.stderr}`);
    logs.push(normalizeLog(r.stdout));
    facts.push(await tpm12Facts(dir));
  }
  assert.ok(logs[0]!.includes('Successfully took ownership of the TPM.'));
  assert.deepEqual(logs[1], logs[0]);
  assert.deepEqual(logs[2], logs[0]);
  assert.equal(facts[0]!.owner, '01');
  assert.match(facts[0]!.nv, /1000f000/);
  assert.match(facts[0]!.nv, /1000f002/);
  assert.deepEqual(facts[1], facts[0]);
  assert.deepEqual(facts[2], facts[0]);
});
