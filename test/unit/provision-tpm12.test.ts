import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { parseSpecInfo } from '../../src/provision/spec-info.js';
import { passwordDigest } from '../../src/provision/tpm12-auth.js';
import {
  EK_CERT_NV_INDEX,
  TPM_NV_INDEX_LOCK,
  createEndorsementKeyPair,
  nvDefineSpace,
  nvWriteValue,
  physicalSetDeactivated,
  srkParams,
  takeOwnershipBody,
  tscPhysicalPresence,
} from '../../src/provision/tpm12-commands.js';

// Golden bytes: Debian swtpm_setup 0.7.1's traffic (swtpm --log level=20), provisioning.md §2.5.

test('swtpm_setup TPM 1.2 commands: golden bytes', () => {
  assert.equal(tscPhysicalPresence(0x20).toString('hex'), '00c10000000c4000000a0020');
  assert.equal(physicalSetDeactivated(0).toString('hex'), '00c10000000b0000007200');
  assert.equal(
    createEndorsementKeyPair().toString('hex'),
    '00c1000000360000007838f03081072b0ca9109808c04b0511c9502352c4' +
      '00000001000300020000000c000008000000000200000000',
  );
  const lock = nvDefineSpace(TPM_NV_INDEX_LOCK, 0, 0);
  assert.equal(lock.length, 101);
  assert.equal(
    lock.toString('hex'),
    `00c100000065000000cc0018ffffffff${'00030000001f'}${'00'.repeat(20)}${'00030000001f'}${'00'.repeat(20)}` +
      `00170000000000000000000000${'00'.repeat(20)}`,
  );
  const def = nvDefineSpace(EK_CERT_NV_INDEX, 0x20002, 0x3ec);
  assert.equal(
    def.subarray(68, 81).toString('hex'),
    ['0017', '00020002', '000000', '000003ec'].join(''),
  );
  const write = nvWriteValue(EK_CERT_NV_INDEX, Buffer.alloc(1004));
  assert.equal(write.length, 1026);
  assert.equal(
    write.subarray(0, 22).toString('hex'),
    '00c100000402000000cd1000f00000000000000003ec',
  );
});

test('TakeOwnership body: 579 bytes before the auth trailer, SRK TPM_KEY12 as swtpm_setup sends it', () => {
  assert.equal(
    srkParams().toString('hex'),
    // tag, fill, keyUsage, flags, authDataUsage, TPM_KEY_PARMS, PCR info, pubKey, encData
    [
      '0028',
      '0000',
      '0011',
      '00000000',
      '01',
      '00000001000300010000000c',
      '000008000000000200000000',
    ]
      .concat(['00000000', '00000000', '00000000'])
      .join(''),
  );
  const body = takeOwnershipBody(Buffer.alloc(256, 1), Buffer.alloc(256, 2));
  assert.equal(body.length + 45, 624);
  assert.equal(body.subarray(0, 16).toString('hex'), '00c2000002430000000d000500000100');
});

test('well-known secrets hash 20 zero bytes; defaults are "ooo" and "sss"', () => {
  const sha1 = (b: Buffer | string) => createHash('sha1').update(b).digest();
  assert.deepEqual(passwordDigest(undefined, true, 'ooo'), sha1(Buffer.alloc(20)));
  assert.deepEqual(passwordDigest(undefined, false, 'sss'), sha1('sss'));
  assert.deepEqual(passwordDigest('x', true, 'ooo'), sha1('x'));
});

test('parseSpecInfo: values in swtpm_setup order, a missing member named as swtpm_setup does', () => {
  const json =
    '{"TPMSpecification":{"family":"1.2","level":2,"revision":116},' +
    '"TPMAttributes":{"manufacturer":"id:00001014","version":"id:00740001","model":"swtpm"}}';
  assert.deepEqual(parseSpecInfo(json), {
    family: '1.2',
    level: 2,
    revision: 116,
    manufacturer: 'id:00001014',
    model: 'swtpm',
    version: 'id:00740001',
  });
  const bad = '{"TPMSpecification":{"family":"1.2"}}';
  assert.throws(() => parseSpecInfo(bad), {
    message: `Could not find [TPMSpecification][level] in '${bad}'`,
  });
});
