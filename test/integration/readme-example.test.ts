// This file is the example in README.md ("In your own test suite"), verbatim except
// for the import path; readme-sync.test.ts keeps the two identical.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTpm, startTpmInProcess, tpm2 } from '../../src/index.js';

test('my code talks to a TPM', async () => {
  const t = await startTpmInProcess(); // TPM 2.0, Startup(CLEAR) already sent
  try {
    const rsp = await t.tpm.transmit(tpm2.getRandom(16));
    assert.equal(tpm2.parseGetRandom(rsp).length, 16); // throws on a TPM error
    assert.equal((await t.control.getCapability()).mask, 0x1ffff);
  } finally {
    await t.close();
  }
});

test('or in a separate process', async () => {
  const t = await startTpm({ tpm2: true });
  try {
    await t.control.setLocality(0);
    const pcr = tpm2.parsePcrRead(await t.tpm.transmit(tpm2.pcrRead(10)));
    assert.equal(pcr.length, 32);
  } finally {
    await t.close();
  }
});
