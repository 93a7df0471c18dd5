// Golden bytes of the TPM command builders in src/protocol/tpm/commands.ts. Each hex
// string is the output of the hand-written builders the tests used before they were
// merged (test/helpers/tpm-commands.ts, bench/tpm-cmds.ts, diff-tpm.ts, start-swtpm.ts,
// crash-kill and the QEMU client), whose commands Debian's swtpm, tpm2-tools and QEMU
// accept in the interop tests.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tpm2, tpm12 } from '../../src/index.js';
import * as C from '../../src/protocol/tpm/commands.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const d32 = Buffer.alloc(32, 0xa5);
const d20 = Buffer.alloc(20, 0x5a);
/** TPM_RS_PW session with empty nonce, attributes and hmac, behind its u32 size. */
const PW = '00000009' + '40000009' + '0000' + '00' + '0000';

const golden: [string, () => Buffer, string][] = [
  ['TPM2_Startup(SU_CLEAR)', () => C.startup2(0), '80010000000c000001440000'],
  ['TPM2_Startup() defaults to SU_CLEAR', () => C.startup2(), '80010000000c000001440000'],
  ['TPM2_Startup(SU_STATE)', () => C.startup2(1), '80010000000c000001440001'],
  ['TPM2_Shutdown(SU_CLEAR)', () => C.shutdown2(0), '80010000000c000001450000'],
  ['TPM2_Shutdown(SU_STATE)', () => C.shutdown2(1), '80010000000c000001450001'],
  ['TPM2_GetRandom(16)', () => C.getRandom2(16), '80010000000c0000017b0010'],
  ['TPM2_FlushContext', () => C.flushContext2(0x80000000), '80010000000e0000016580000000'],
  [
    'TPM2_PCR_Extend(16)',
    () => C.pcrExtend2(16, d32),
    `800200000041000001820000001000000009400000090000000000000000010 00b${'a5'.repeat(32)}`.replace(
      ' ',
      '',
    ),
  ],
  ['TPM2_PCR_Reset(16)', () => C.pcrReset2(16), `80020000001b0000013d00000010${PW}`],
  ['TPM2_PCR_Read(0)', () => C.pcrRead2(0), '8001000000140000017e00000001000b03010000'],
  ['TPM2_PCR_Read(16)', () => C.pcrRead2(16), '8001000000140000017e00000001000b03000001'],
  ['TPM2_PCR_Read(23)', () => C.pcrRead2(23), '8001000000140000017e00000001000b03000080'],
  [
    'TPM2_PCR_Read(sha256, 0-23)',
    () => C.pcrReadSelect2(C.TPM_ALG_SHA256, 0xffffff),
    '8001000000140000017e00000001000b03ffffff',
  ],
  [
    'TPM2_PCR_Read(sha1, 8-23)',
    () => C.pcrReadSelect2(C.TPM_ALG_SHA1, 0xffff00),
    '8001000000140000017e0000000100040300ffff',
  ],
  [
    'TPM2_CreatePrimary(owner, RSA 2048)',
    () => C.createPrimaryRsa2(2048),
    `80020000004300000131${'40000001'}${PW}000400000000001a0001000b00030072000000060080004300100800000000000000000000000000`,
  ],
  [
    'TPM2_CreatePrimary(owner, RSA 3072)',
    () => C.createPrimaryRsa2(3072),
    `80020000004300000131${'40000001'}${PW}000400000000001a0001000b00030072000000060080004300100c00000000000000000000000000`,
  ],
  [
    'TPM2_CreatePrimary(owner, RSA 1024, unique)',
    () => C.createPrimaryRsa2(1024, Buffer.alloc(4, 0x9b)),
    `80020000004700000131${'40000001'}${PW}000400000000001e0001000b000300720000000600800043001004000000000000049b9b9b9b000000000000`,
  ],
  [
    'TPM2_CreatePrimary(endorsement, ECC P-256)',
    () => C.createPrimaryEcc2(),
    `800200000043000001314000000b${PW}000400000000001a0023000b00030072000000060080004300100003001000000000000000000000`,
  ],
  [
    'TPM2_NV_DefineSpace(ordinary)',
    () => C.nvDefineSpace2(0x01000001, 64),
    `80020000002d0000012a40000001${PW}0000000e01000001000b0204000400000040`,
  ],
  [
    'TPM2_NV_DefineSpace(counter)',
    () =>
      C.nvDefineSpace2(
        0x01500016,
        8,
        C.TPMA_NV.OWNERWRITE |
          C.TPMA_NV.AUTHWRITE |
          C.TPMA_NV.NT_COUNTER |
          C.TPMA_NV.OWNERREAD |
          C.TPMA_NV.AUTHREAD |
          C.TPMA_NV.NO_DA,
      ),
    `80020000002d0000012a40000001${PW}0000000e01500016000b0206001600000008`,
  ],
  [
    'TPM2_NV_Write',
    () => C.nvWrite2(0x01000001, Buffer.alloc(4, 0xab), 8),
    `800200000027000001370100000101000001${PW}0004abababab0008`,
  ],
  [
    'TPM2_NV_Increment',
    () => C.nvIncrement2(0x01500016),
    `80020000001f000001340150001601500016${PW}`,
  ],
  [
    'TPM2_NV_Read',
    () => C.nvRead2(0x01500016, 8, 0),
    `8002000000230000014e0150001601500016${PW}00080000`,
  ],
  ['TPM_Startup(ST_CLEAR)', () => C.startup12(1), '00c10000000c000000990001'],
  ['TPM_Startup() defaults to ST_CLEAR', () => C.startup12(), '00c10000000c000000990001'],
  ['TPM_Startup(ST_STATE)', () => C.startup12(2), '00c10000000c000000990002'],
  ['TPM_GetRandom(16)', () => C.getRandom12(16), '00c10000000e0000004600000010'],
  ['TPM_Extend(10)', () => C.extend12(10, d20), `00c100000022000000140000000a${'5a'.repeat(20)}`],
  ['TPM_PCRRead(10)', () => C.pcrRead12(10), '00c10000000e000000150000000a'],
  ['TPM_SaveState', () => C.saveState12(), '00c10000000a00000098'],
  ['SetLocality (TPM 2)', () => C.setLocalityVendor(true, 3), '80010000000b2000100003'],
  ['SetLocality (TPM 1.2)', () => C.setLocalityVendor(false, 3), '00c10000000b2000100003'],
  [
    'TPM_SEND_COMMAND prefix',
    () => C.sendCommandPrefix(3, C.startup2(0)),
    '00000008030000000c80010000000c000001440000',
  ],
];

describe('TPM command builders: golden bytes', () => {
  for (const [name, build, want] of golden) {
    it(name, () => assert.equal(hex(build()), want));
  }
  it('reject digests of the wrong size', () => {
    assert.throws(() => C.pcrExtend2(0, Buffer.alloc(20)), /32 bytes/);
    assert.throws(() => C.extend12(0, Buffer.alloc(32)), /20 bytes/);
  });
  it('the public tpm2/tpm12 objects are the same builders', () => {
    assert.equal(hex(tpm2.startup(tpm2.SU_STATE)), '80010000000c000001440001');
    assert.equal(hex(tpm2.pcrRead(16)), hex(C.pcrRead2(16)));
    assert.equal(hex(tpm12.startup(tpm12.ST_CLEAR)), '00c10000000c000000990001');
  });
});

describe('TPM response parsers', () => {
  const rsp = (h: string) => Buffer.from(h, 'hex');
  it('parseResponse checks the size field', () => {
    assert.deepEqual(C.parseResponse(rsp('80010000000a00000100')).rc, 0x100);
    assert.throws(() => C.parseResponse(rsp('80010000000b00000100')), /size field/);
    assert.throws(() => C.parseResponse(rsp('800100')), /short/);
  });
  it('GetRandom (TPM 2 and 1.2)', () => {
    assert.equal(hex(C.parseGetRandom2(rsp('80010000000e000000000002abcd'))), 'abcd');
    assert.equal(hex(C.parseGetRandom12(rsp('00c400000010000000000000000201ff'))), '01ff');
    assert.throws(() => C.parseGetRandom2(rsp('80010000000a00000101')), /rc 0x101/);
  });
  it('PCR_Read of one PCR', () => {
    const r = `80010000003e00000000 00000014 00000001 000b 03 000001 00000001 0020 ${'77'.repeat(32)}`;
    assert.equal(hex(C.parsePcrRead2(rsp(r.replace(/ /g, '')))), '77'.repeat(32));
  });
  it('TPM 1.2 PCR value', () => {
    assert.equal(hex(C.parsePcr12(rsp(`00c40000001e00000000${'11'.repeat(20)}`))), '11'.repeat(20));
  });
  it('CreatePrimary (RSA): handle and modulus', () => {
    const pub = '0001000b0003007200000006008000430010 0400 00000000 0004 c0ffee11'.replace(
      / /g,
      '',
    );
    const body = `80000001 00000000 ${(pub.length / 2).toString(16).padStart(4, '0')} ${pub}`;
    const r = rsp(
      `8002${(10 + 10 + pub.length / 2).toString(16).padStart(8, '0')}00000000${body.replace(/ /g, '')}`,
    );
    const { handle, modulus } = C.parseCreatePrimaryRsa2(r);
    assert.equal(handle, 0x80000001);
    assert.equal(hex(modulus), 'c0ffee11');
    assert.equal(hex(C.parseCreatePrimary2(r).outPublic), pub);
  });
});
