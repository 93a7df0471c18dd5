import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { startTpmInProcess } from '../../src/index.js';

// TPM2_GetRandom(16).
const GET_RANDOM = Buffer.from('80010000000c0000017b0010', 'hex');

test('startTpmInProcess() serves a TPM 2.0 on Unix sockets without spawning', async () => {
  const t = await startTpmInProcess();
  try {
    const caps = await t.control.getCapability();
    assert.equal(caps.mask, 0x1ffff);
    const rsp = Buffer.from(await t.tpm.transmit(GET_RANDOM));
    assert.equal(rsp.readUInt32BE(6), 0, 'GetRandom succeeds (Startup was sent)');
    assert.equal(rsp.readUInt16BE(10), 16);
    await assert.rejects(startTpmInProcess(), /already running/);
  } finally {
    await t.close();
  }
  assert.equal(existsSync(t.ctrlPath), false, 'sockets are removed');
  assert.equal(existsSync(t.stateDir), false, 'the temporary state is removed');
});

test('a second in-process TPM starts after the first closed; startup none waits for CMD_INIT', async () => {
  const t = await startTpmInProcess({ startup: 'none' });
  try {
    // Not started: the data channel answers TPM_RC_FAILURE until CMD_INIT.
    let rsp = Buffer.from(await t.tpm.transmit(GET_RANDOM));
    assert.equal(rsp.readUInt32BE(6), 0x101);
    await t.control.init();
    rsp = Buffer.from(await t.tpm.transmit(GET_RANDOM));
    assert.equal(rsp.readUInt32BE(6), 0x100, 'running, waiting for TPM2_Startup');
  } finally {
    await t.close();
  }
});
