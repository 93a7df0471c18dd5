// Golden bytes of swtpm_setup's TPM 2 commands and templates (provisioning.md §2.2-2.4,
// observed from Debian's swtpm_setup 0.7.1 traces), and its config-file syntax (§3.1).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSetupConfig } from '../../src/cli/setup/config.js';
import { parseSetupArgs } from '../../src/cli/setup/options.js';
import {
  createPrimary,
  evictControl,
  getCapabilityPcrs,
  nvDefineSpace,
  nvWrite,
  nvWriteLock,
  pcrAllocate,
  shutdown,
} from '../../src/provision/tpm2-cmds.js';
import { SETUP_NV_ATTRIBUTES } from '../../src/provision/tpm2-nv.js';
import { parsePcrBanks } from '../../src/provision/tpm2-pcr.js';
import {
  eccEk,
  ekParamFromResponse,
  rsaEk,
  spkTemplate,
} from '../../src/provision/tpm2-templates.js';

const POLICY_A = '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa';
const POLICY_B =
  'b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12';
const plain = { allowSigning: false, decryption: false };

test('RSA 2048 EK template is the observed 314 bytes', () => {
  const t = rsaEk(2048, plain).template.toString('hex');
  assert.equal(
    t,
    `0001000b000300b20020${POLICY_A}00060080004300100800000000000100${'00'.repeat(256)}`,
  );
});

test('ECC P-384 EK template is the observed 74 bytes', () => {
  const t = eccEk(plain).template.toString('hex');
  assert.equal(t, `0023000c000300f20030${POLICY_B}00060100004300100004001000000000`);
});

test('template lengths and attributes of the signing variants (§2.3 table)', () => {
  const sign = { allowSigning: true, decryption: false };
  const both = { allowSigning: true, decryption: true };
  const cases: Array<[Buffer, number, number]> = [
    [rsaEk(2048, sign).template, 310, 0x000400b2],
    [rsaEk(2048, both).template, 310, 0x000600b2],
    [rsaEk(3072, plain).template, 74, 0x000300f2],
    [rsaEk(3072, both).template, 70, 0x000600f2],
    [eccEk(sign).template, 70, 0x000400f2],
    [rsaEk(2048, { allowSigning: false, decryption: true }).template, 314, 0x000300b2],
  ];
  for (const [t, len, attrs] of cases) {
    assert.equal(t.length, len);
    assert.equal(t.readUInt32BE(4), attrs);
  }
  assert.equal(rsaEk(3072, plain).persistentHandle, 0x8101001c);
  assert.equal(rsaEk(3072, plain).certIndex, 0x01c0001c);
  assert.equal(rsaEk(3072, plain).templateIndex, 0x01c0001d);
  assert.equal(eccEk(plain).templateIndex, 0x01c00017);
});

test('SPK templates: 0x00030472, 256/384 zero bytes or two 48-byte points', () => {
  assert.equal(spkTemplate(false, 2048).readUInt32BE(4), 0x00030472);
  assert.equal(spkTemplate(false, 2048).length, 2 + 2 + 4 + 2 + 6 + 2 + 2 + 4 + 2 + 256);
  assert.equal(spkTemplate(false, 3072).length, 2 + 2 + 4 + 2 + 6 + 2 + 2 + 4 + 2 + 384);
  assert.equal(spkTemplate(true, 2048).length, 2 + 2 + 4 + 2 + 6 + 2 + 2 + 2 + 50 + 50);
});

test('command sizes of the observed 0.7.1 trace', () => {
  assert.equal(createPrimary(0x4000000b, rsaEk(2048, plain).template).length, 355);
  assert.equal(createPrimary(0x4000000b, eccEk(plain).template).length, 115);
  assert.equal(evictControl(0x80000000, 0x81010001).length, 35);
  assert.equal(nvDefineSpace(0x01c00002, SETUP_NV_ATTRIBUTES, 1000).length, 45);
  assert.equal(nvWriteLock(0x01c00002).length, 31);
  assert.equal(getCapabilityPcrs().toString('hex'), '8001000000160000017a000000050000000000000040');
  assert.equal(shutdown().toString('hex'), '80010000000c000001450000');
  // A 1024-byte chunk: 35 bytes around the data (observed NV_Write of 1048 for 1013 bytes).
  assert.equal(nvWrite(0x01c00002, Buffer.alloc(1013), 0).length, 1048);
  assert.equal(SETUP_NV_ATTRIBUTES, 0x42072001);
});

test('PCR_Allocate for sha256 on sha1/256/384/512 (observed bytes)', () => {
  const cmd = pcrAllocate([
    { alg: 0x000b, on: true },
    { alg: 0x0004, on: false },
    { alg: 0x000c, on: false },
    { alg: 0x000d, on: false },
  ]);
  assert.equal(cmd.length, 55);
  assert.equal(
    cmd.subarray(27).toString('hex'),
    '00000004000b03ffffff000403000000000c03000000000d03000000',
  );
});

test('GetCapability(PCRS) response: bank ids in TPM order', () => {
  const rsp = Buffer.from(
    '80010000002b0000000000000000050000000400040300000' + '0000b03ffffff000c03ffffff000d03000000',
    'hex',
  );
  assert.deepEqual(parsePcrBanks(rsp), [4, 0xb, 0xc, 0xd]);
});

test('EK parameter: RSA modulus at offset 76, ECC point at offset 90', () => {
  const ek = rsaEk(2048, plain);
  const rsp = Buffer.alloc(76 + 2 + 256 + 10);
  rsp.writeUInt16BE(256, 76);
  rsp.fill(0xab, 78, 78 + 256);
  assert.equal(ekParamFromResponse(ek, rsp), 'ab'.repeat(256));
  rsp.writeUInt16BE(255, 76);
  assert.throws(() => ekParamFromResponse(ek, rsp), /public key size/);
  const ecc = Buffer.alloc(200);
  ecc.writeUInt16BE(48, 90);
  ecc.fill(1, 92, 140);
  ecc.writeUInt16BE(48, 140);
  ecc.fill(2, 142, 190);
  assert.equal(
    ekParamFromResponse(eccEk(plain), ecc),
    `x=${'01'.repeat(48)},y=${'02'.repeat(48)},id=secp384r1`,
  );
});

test('swtpm_setup.conf syntax: column-0 keys, # ends values, ${VAR}, first match wins', () => {
  const text = [
    '# comment',
    ' active_pcr_banks = sha1',
    'create_certs_tool= /usr/bin/swtpm_localca  ',
    'create_certs_tool_config = ${CFGDIR}/a.conf # note',
    'active_pcr_banks\t=\tsha256,sha384\r',
    'active_pcr_banks = sha512',
  ].join('\n');
  const c = parseSetupConfig(text, { CFGDIR: '/x' });
  assert.equal(c.createCertsTool, '/usr/bin/swtpm_localca');
  assert.equal(c.createCertsToolConfig, '/x/a.conf');
  assert.equal(c.activePcrBanks, 'sha256,sha384');
  assert.equal(c.createCertsToolOptions, undefined);
});

test('options: --pcr-banks values are trimmed and joined, fds must be numbers', () => {
  const a = parseSetupArgs('p', [
    '--pcr-banks',
    ' sha1,sha256 ',
    '--pcr-banks=sha384',
    '--tpmstate',
    'x',
  ]);
  assert.equal(a.pcrBanks, 'sha1,sha256,sha384');
  assert.equal(a.values.get('tpm-state'), 'x');
  assert.throws(() => parseSetupArgs('p', ['--pwdfile-fd', '9x']), /Invalid file descriptor '9x'/);
  const c = parseSetupArgs('p', [
    '--tpm2',
    '--create-config-files',
    'root,skip-if-exist',
    '--bogus',
  ]);
  assert.equal(c.createConfigFiles, 'root,skip-if-exist');
});
