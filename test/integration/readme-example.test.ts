// This file is the example in README.md ("In your own test suite"), verbatim except
// for the import path; readme-sync.test.ts keeps the two identical.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTpm, startTpmInProcess } from '../../src/index.js';

const GET_RANDOM_16 = Buffer.from('80010000000c0000017b0010', 'hex');

test('my code talks to a TPM', async () => {
  const tpm = await startTpmInProcess(); // TPM 2.0, Startup(CLEAR) already sent
  try {
    const rsp = Buffer.from(await tpm.tpm.transmit(GET_RANDOM_16));
    assert.equal(rsp.readUInt32BE(6), 0); // TPM_RC_SUCCESS
    assert.equal((await tpm.control.getCapability()).mask, 0x1ffff);
  } finally {
    await tpm.close();
  }
});

test('or in a separate process', async () => {
  const t = await startTpm({ tpm2: true });
  try {
    await t.control.setLocality(0);
  } finally {
    await t.close();
  }
});
