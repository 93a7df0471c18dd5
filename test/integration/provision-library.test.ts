// `tswtpm/provision` as a library user sees it: an in-process TPM manufactured by
// setupTpm2 with certificates from the local CA, no child process and no CLI. The EK
// certificate written to NV (and to --write-ek-cert-files' file) chains to that CA.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startTpmInProcess } from '../../src/index.js';
import {
  TPM2_SETUP_DEFAULTS,
  linkOf,
  localCaCertMaker,
  setupTpm2,
} from '../../src/provision/index.js';
import { tempDir } from '../helpers/procs.js';

const tmp = tempDir('provision-lib-');
after(() => tmp.remove());

test('setupTpm2 + localCaCertMaker on startTpmInProcess: EK certificate in NV, chained to the CA', async () => {
  const state = join(tmp.path, 'state');
  const ca = join(tmp.path, 'ca');
  const out = join(tmp.path, 'out');
  for (const d of [state, out]) mkdirSync(d);
  const conf = join(tmp.path, 'swtpm-localca.conf');
  writeFileSync(
    conf,
    `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`,
  );
  const opts = join(tmp.path, 'swtpm-localca.options');
  writeFileSync(opts, '--platform-manufacturer Test\n--platform-version 1\n--platform-model M\n');
  const lines: string[] = [];
  const tpm = await startTpmInProcess({ tpm2: true, args: ['--tpmstate', `dir=${state}`] });
  try {
    await setupTpm2(
      linkOf(tpm),
      { ...TPM2_SETUP_DEFAULTS, createEkCert: true, lockNvram: true, writeEkCertFilesDir: out },
      localCaCertMaker({ configFile: conf, optsFile: opts, log: (l) => lines.push(l) }),
      { info: (l) => lines.push(l), error: (l) => lines.push(`error: ${l}`) },
    );
  } finally {
    await tpm.control.shutdown();
    await tpm.close();
  }
  assert.ok(
    lines.includes('Successfully created RSA 2048 EK with handle 0x81010001.'),
    lines.join('\n'),
  );
  assert.ok(!lines.some((l) => l.startsWith('error: ')), lines.join('\n'));
  const crt = join(out, 'ek-rsa2048.crt');
  const der = readFileSync(crt);
  assert.equal(der[0], 0x30, 'a DER certificate');
  // The chain: root CA (next to the signing key) and the intermediate issuer cert.
  const pem = join(tmp.path, 'ek.pem');
  execFileSync('openssl', ['x509', '-inform', 'DER', '-in', crt, '-out', pem]);
  const v = execFileSync(
    'openssl',
    [
      'verify',
      '-CAfile',
      join(ca, 'swtpm-localca-rootca-cert.pem'),
      '-untrusted',
      join(ca, 'issuercert.pem'),
      pem,
    ],
    { encoding: 'utf8' },
  );
  assert.match(v, /: OK/);
});
