import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  configLines,
  configValue,
  expandEnv,
  optionWords,
} from '../../src/provision/certs/config.js';
import { subjectName } from '../../src/provision/certs/dn.js';
import { vmidSubject } from '../../src/provision/certs/issue.js';
import { parseSerial } from '../../src/provision/certs/localca.js';
import { localCaCertMaker } from '../../src/provision/certs/maker.js';
import { serialHex, withTpm12Header } from '../../src/provision/certs/profile.js';
import {
  KeyUsageFlags,
  basicConstraints,
  ekSan,
  extKeyUsage,
  keyUsage,
  platformSan2,
  platformSan12,
  tpmSpecSda,
} from '../../src/provision/certs/tcg-asn.js';
import { tempDir } from '../helpers/procs.js';

const hex = (b: ArrayBuffer | Uint8Array) => Buffer.from(b as ArrayBuffer).toString('hex');
const TPM2 = { manufacturer: 'id:00001014', model: 'swtpm', version: 'id:20191023' };
const TPM12 = { ...TPM2, version: 'id:00740001' };
const PLATFORM = { manufacturer: 'Fedora', model: 'QEMU', version: '2.1' };

// Golden bytes: extension values of certificates made by Debian's swtpm_cert 0.7.1
// (provisioning.md §5.3, and the TPM 1.2 platform SAN observed from swtpm_localca 0.7.1).
describe('TCG extension values equal swtpm_cert 0.7.1', () => {
  it('EK subjectAltName', () => {
    assert.equal(
      hex(ekSan(TPM2)),
      '3046a4443042311630140605678105020' +
        '10c0b69643a30303030313031343110300e060567810502020c05737774706d3116301406056781050203' +
        '0c0b69643a3230313931303233',
    );
  });
  it('subjectDirectoryAttributes (TPM 2 and TPM 1.2)', () => {
    assert.equal(
      hex(tpmSpecSda('2.0', 0, 164)),
      '3019301706056781050210310e300c0c03322e30020100020200a4',
    );
    assert.equal(
      hex(tpmSpecSda('1.2', 2, 116)),
      '3018301606056781050210310d300b0c03312e32020102020174',
    );
  });
  it('TPM 2 platform subjectAltName', () => {
    assert.equal(
      hex(platformSan2(PLATFORM)),
      '303ba43930373112301006066781050501010c064665646f72613110300e06066781050501040c0451454d55' +
        '310f300d06066781050501050c03322e31',
    );
  });
  it('TPM 1.2 platform subjectAltName (TPM and platform Names in one SEQUENCE)', () => {
    assert.equal(
      hex(platformSan12(TPM12, PLATFORM)),
      '307ea47c307a304231163014060567810502010c0b69643a30303030313031343110300e06056781050202' +
        '0c05737774706d31163014060567810502030c0b69643a303037343030303130343111300f060567810502' +
        '040c064665646f7261310f300d060567810502050c0451454d55310e300c060567810502060c03322e31',
    );
  });
  it('keyUsage, basicConstraints, extKeyUsage', () => {
    assert.equal(hex(keyUsage(KeyUsageFlags.keyEncipherment)), '03020520');
    assert.equal(hex(keyUsage(KeyUsageFlags.keyAgreement)), '03020308');
    assert.equal(hex(keyUsage(KeyUsageFlags.digitalSignature)), '03020780');
    assert.equal(hex(keyUsage(KeyUsageFlags.keyCertSign)), '03020204');
    assert.equal(hex(basicConstraints(false)), '3000');
    assert.equal(hex(basicConstraints(true)), '30030101ff');
    assert.equal(hex(extKeyUsage('2.23.133.8.1')), '300706056781050801');
    assert.equal(hex(extKeyUsage('2.23.133.8.2')), '300706056781050802');
  });
  it('serial numbers are minimal positive INTEGERs (128 gets a 00 byte)', () => {
    assert.equal(serialHex(2n), '02');
    assert.equal(serialHex(127n), '7f');
    assert.equal(serialHex(128n), '0080');
    assert.equal(serialHex(0x8000n), '008000');
  });
  it('TPM 1.2 NV header', () => {
    const der = new Uint8Array(997).fill(0x30);
    assert.equal(hex(withTpm12Header(der).subarray(0, 8)), '100100' + '03e7' + '1002' + '30');
  });
  it('subject DNs as GnuTLS encodes them', () => {
    const dn = (s: string) => hex(AsnConvert.serialize(subjectName(s)));
    assert.equal(dn('CN=test'), '300f310d300b0603550403130474657374');
    assert.match(dn('CN=a_b_c+d'), /0c07/); // `_` is not printable: UTF8String
    assert.equal(dn(''), '3000');
    // Reverse order: `C=US,CN=x` → CN first.
    assert.match(dn('C=US,CN=x'), /^30.{2}31.{2}30.{2}0603550403/);
    assert.equal(vmidSubject('a+b,c\\+d'), 'CN=a_b_c\\+d');
    assert.equal(vmidSubject(undefined), 'CN=unknown');
  });
});

describe('swtpm-localca.conf and .options', () => {
  const env = { HOME: '/h', EMPTY: '' };
  const lines = configLines(
    ' statedir = /indented\n#statedir=/commented\nstatedir\t=\t${HOME}/ca # note\r\nstatedir = /second\nsigningkey=${NOPE}/k${unterminated\n',
  );
  it('column-0 keys, comments, trailing whitespace, first match wins, ${ENV}', () => {
    assert.equal(configValue(lines, 'statedir', env), '/h/ca');
    assert.equal(configValue(lines, 'signingkey', env), '/k${unterminated');
    assert.equal(configValue(lines, 'issuercert', env, 'dflt'), 'dflt');
    assert.equal(expandEnv('${EMPTY}x${HOME}', env), 'x/h');
  });
  it('options file: words split on single spaces', () => {
    assert.deepEqual(optionWords('--platform-manufacturer  Acme Corp\n\n--x 1\n'), [
      '--platform-manufacturer',
      'Acme',
      'Corp',
      '--x',
      '1',
    ]);
  });
  it('certserial parsing tolerates whitespace and a trailing newline, not junk', () => {
    assert.equal(parseSerial('41'), 41n);
    assert.equal(parseSerial(' 41\n'), 41n);
    assert.equal(parseSerial('99999999999999999999999'), 99999999999999999999999n);
    assert.equal(parseSerial('garbage'), undefined);
    assert.equal(parseSerial(''), undefined);
  });
});

describe('localCaCertMaker (in process, no child process)', () => {
  const work = tempDir('tswtpm-localca-');
  after(() => work.remove());
  it('creates the CA from a config with ${ENV}, then issues EK (TPM 2, TPM 1.2) and platform certificates', async () => {
    const conf = join(work.path, 'swtpm-localca.conf');
    writeFileSync(
      conf,
      'statedir = ${LOCALCA_TEST}/ca\nsigningkey = ${LOCALCA_TEST}/ca/signkey.pem\nissuercert = ${LOCALCA_TEST}/ca/issuercert.pem\n',
    );
    const opts = join(work.path, 'swtpm-localca.options');
    writeFileSync(
      opts,
      '--platform-manufacturer Fedora\n--platform-version 2.1\n--platform-model QEMU\n',
    );
    const logs: string[] = [];
    const make = localCaCertMaker({
      configFile: conf,
      optsFile: opts,
      env: { LOCALCA_TEST: work.path },
      log: (l) => logs.push(l),
    });
    const modulus = 'c0'.repeat(256);
    const spec = { family: '2.0', level: 0, revision: 164, ...TPM2 };
    const ek = await make({ type: 'ek', ekParam: modulus, tpm2: true, spec, vmid: 'vm1' });
    const plat = await make({ type: 'platform', ekParam: modulus, tpm2: true, spec });
    const ek12 = await make({
      type: 'ek',
      ekParam: modulus,
      tpm2: false,
      spec: { family: '1.2', level: 2, revision: 116, ...TPM12 },
    });
    assert.deepEqual(logs, [
      `Creating swtpm-localca dir '${work.path}/ca'.`,
      "Creating root CA and a local CA's signing key and issuer cert.",
      'Successfully created EK certificate locally.',
      'Successfully created platform certificate locally.',
      'Successfully created EK certificate locally.',
    ]);
    assert.equal(ek[0], 0x30);
    assert.equal(hex(ek12.subarray(0, 2)), '1001');
    assert.equal(readFileSync(join(work.path, 'ca', 'certserial'), 'utf8'), '4');
    assert.equal(statSync(join(work.path, 'ca', 'signkey.pem')).mode & 0o777, 0o640);
    const r = spawnSync('openssl', ['x509', '-inform', 'der', '-noout', '-subject', '-serial'], {
      input: plat,
    });
    assert.equal(r.stdout.toString(), 'subject=CN = unknown\nserial=03\n');
  });
  it('two concurrent requests on a missing CA make it once (re-checked under the lock)', async () => {
    const base = join(work.path, 'race');
    const conf = join(work.path, 'race.conf');
    writeFileSync(
      conf,
      `statedir = ${base}\nsigningkey = ${base}/signkey.pem\nissuercert = ${base}/issuercert.pem\n`,
    );
    const opts = join(work.path, 'race.options');
    writeFileSync(opts, '--platform-manufacturer F --platform-version 1 --platform-model Q\n');
    const make = localCaCertMaker({ configFile: conf, optsFile: opts, env: {} });
    const spec = { family: '2.0', level: 0, revision: 164, ...TPM2 };
    const ekParam = 'c1'.repeat(256);
    const certs = await Promise.all([
      make({ type: 'ek', ekParam, tpm2: true, spec }),
      make({ type: 'platform', ekParam, tpm2: true, spec }),
    ]);
    for (const der of certs) {
      const pem = join(work.path, 'race.pem');
      writeFileSync(pem, spawnSync('openssl', ['x509', '-inform', 'der'], { input: der }).stdout);
      const r = spawnSync('openssl', [
        'verify',
        '-CAfile',
        join(base, 'swtpm-localca-rootca-cert.pem'),
        '-untrusted',
        join(base, 'issuercert.pem'),
        pem,
      ]);
      assert.equal(r.status, 0, r.stdout.toString() + r.stderr.toString());
    }
  });
});
