import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TPM_FAIL, TPM_RETRY, failureResult } from '../../src/engine/callbacks.js';
import { StateBlobError } from '../../src/protocol/state/index.js';
import { StorageError } from '../../src/storage/errors.js';

test('a failing NV callback answers the error result, never success or TPM_RETRY', () => {
  const hmac = new StorageError('CORRUPT_STATE', 'x', { result: 0x21 });
  assert.equal(failureResult(hmac), 0x21);
  assert.equal(failureResult(new StorageError('READ_FAILED', 'EIO')), TPM_FAIL);
  assert.equal(failureResult(new Error('plain')), TPM_FAIL);
  assert.equal(failureResult('thrown string'), TPM_FAIL);
  // TPM_RETRY would make libtpms manufacture a new TPM over an unreadable state.
  assert.equal(failureResult({ result: TPM_RETRY }), TPM_FAIL);
  assert.equal(failureResult({ result: 0 }), TPM_FAIL);
  assert.equal(failureResult({ result: -1 }), TPM_FAIL);
  assert.equal(failureResult(new StateBlobError('HMAC_MISMATCH', 0x21, 'x')), 0x21);
});
