// CMD_SET_STATEBLOB sequences libtpms cannot take. libtpms 0.9.2 dereferences NULL in
// TPMLIB_SetState(VOLATILE, data) after TPMLIB_SetState(PERMANENT, NULL): swtpm 0.7.1
// segfaults on "SET_STATEBLOB permanent, length 0" followed by "SET_STATEBLOB
// volatile, <any data>" (found by the ctrl-session fuzz target; docs/reliability.md).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { control } from '../../src/device/control.js';
import { PTM_BLOB_TYPE_PERMANENT, PTM_BLOB_TYPE_VOLATILE } from '../../src/protocol/ctrl/index.js';
import { TPM_FAIL } from '../../src/protocol/tpm/results.js';
import { makeDevice } from './cuse-helpers.js';

const setBlob = (type: number, data: Uint8Array) =>
  ({ cmd: 'SET_STATEBLOB', stateFlags: 0, type, length: data.length, data }) as const;

describe('SET_STATEBLOB after an empty permanent blob', () => {
  it('a volatile blob is refused instead of crashing libtpms', () => {
    const dev = makeDevice();
    assert.deepEqual(control(dev, setBlob(PTM_BLOB_TYPE_PERMANENT, new Uint8Array(0))), {
      result: 0,
    });
    const r = control(dev, setBlob(PTM_BLOB_TYPE_VOLATILE, Uint8Array.from([0x0b, 1, 1])));
    assert.deepEqual(r, { result: TPM_FAIL });
    // The device still works: a permanent blob lifts the refusal (libtpms rejects junk).
    const p = control(dev, setBlob(PTM_BLOB_TYPE_PERMANENT, Uint8Array.from([0x0b, 1, 1])));
    assert.notEqual((p as { result: number }).result, 0);
    const v = control(dev, setBlob(PTM_BLOB_TYPE_VOLATILE, Uint8Array.from([0x0b, 1, 1])));
    assert.notEqual((v as { result: number }).result, TPM_FAIL);
    assert.equal(dev.startTpm(0), 0);
    dev.stopTpm();
  });
});
