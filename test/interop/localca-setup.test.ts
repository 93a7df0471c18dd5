import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LOCALCA_BIN, caFiles, haveSwtpmLocalca, verify } from '../helpers/localca.js';
import { tempDir } from '../helpers/procs.js';

// Debian's swtpm_setup 0.7.1 with tswtpm_localca as its create_certs_tool (the plug-in
// contract of provisioning.md §3.2): it runs our tool for the RSA EK, the platform and the
// ECC EK certificates, stores them in NV and writes the EK certificates out.

const haveSetup =
  haveSwtpmLocalca() && spawnSync('swtpm_setup', ['--help'], { stdio: 'ignore' }).status === 0;
const skip = !haveSetup && 'Debian swtpm_setup, swtpm_localca or openssl not installed';
const work = tempDir('tswtpm-localca-');
after(() => work.remove());

test('swtpm_setup stores the certificates tswtpm_localca makes', { skip }, () => {
  const f = caFiles(join(work.path, 'setup'));
  // The plug-in is run by path; this wrapper pins the node that runs the tests.
  const tool = join(work.path, 'tswtpm_localca');
  writeFileSync(tool, `#!/bin/sh\nexec '${process.execPath}' '${LOCALCA_BIN}' "$@"\n`);
  chmodSync(tool, 0o755);
  const conf = join(work.path, 'swtpm_setup.conf');
  writeFileSync(
    conf,
    `create_certs_tool = ${tool}\ncreate_certs_tool_config = ${f.conf}\ncreate_certs_tool_options = ${f.opts}\nactive_pcr_banks = sha256\n`,
  );
  const state = join(work.path, 'state');
  const out = join(work.path, 'ekcerts');
  mkdirSync(state);
  mkdirSync(out);
  const r = spawnSync(
    'swtpm_setup',
    [
      '--tpm2',
      '--tpmstate',
      state,
      '--createek',
      '--ecc',
      '--create-ek-cert',
      '--create-platform-cert',
      '--lock-nvram',
      '--config',
      conf,
      '--vmid',
      'test',
      '--write-ek-cert-files',
      out,
    ],
    { encoding: 'utf8', env: { ...process.env, XDG_CONFIG_HOME: join(work.path, 'xdg') } },
  );
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const line of [
    'tswtpm_localca: Successfully created EK certificate locally.',
    'tswtpm_localca: Successfully created platform certificate locally.',
    'Successfully created NVRAM area 0x1c00002 for RSA 2048 EK certificate.',
    'Successfully created NVRAM area 0x1c08000 for platform certificate.',
    'Successfully created NVRAM area 0x1c00016 for ECC EK certificate.',
    'Successfully authored TPM state.',
  ])
    assert.ok(r.stdout.includes(`${line}\n`), `missing "${line}" in\n${r.stdout}`);
  for (const name of ['ek-rsa2048.crt', 'ek-secp384r1.crt']) {
    const v = verify(readFileSync(join(out, name)), f.ca, work.path);
    assert.ok(v.ok, `${name}: ${v.out}`);
  }
  // Serials 2 (RSA EK), 3 (platform), 4 (ECC EK), as with swtpm_localca.
  assert.equal(readFileSync(join(f.ca, 'certserial'), 'utf8'), '4');
});
