import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  type Tool,
  asnTree,
  caFiles,
  certDer,
  extText,
  haveSwtpmLocalca,
  p384Param,
  rsaModulus,
  runLocalca,
  tpmArgs,
  verify,
} from '../helpers/localca.js';
import { tempDir } from '../helpers/procs.js';

// Debian's swtpm_localca 0.7.1 (with swtpm_cert) and tswtpm_localca make the same
// certificate from the same plug-in arguments (provisioning.md §3.2, §5): the asn1parse trees
// are equal apart from the serial and notBefore, the extension lists are equal, ours verify
// against the local CA chain, and TPM 1.2 files carry the same 7-byte NV header.

const skip = !haveSwtpmLocalca() && 'Debian swtpm_localca or openssl not installed';
const work = tempDir('tswtpm-localca-');
const files = caFiles(join(work.path, 'diff'));

before(() => {
  if (skip) return;
  // The CA is created by Debian's tool (certtool), then shared by both.
  const out = join(work.path, 'init');
  mkdirSync(out);
  const r = runLocalca('c', [
    '--type',
    'ek',
    '--ek',
    rsaModulus(2048),
    '--dir',
    out,
    ...tpmArgs(true),
    '--configfile',
    files.conf,
    '--optsfile',
    files.opts,
  ]);
  assert.equal(r.status, 0, r.stderr);
});
after(() => work.remove());

const VMID = 'test-vm:1f2e3d4c-0000-4000-8000-000000000001';

// One key per kind for all cases (RSA key generation dominates otherwise).
const KEYS: Record<string, () => string> = {
  'RSA-2048': once(() => rsaModulus(2048)),
  'RSA-3072': once(() => rsaModulus(3072)),
  'P-384': once(() => p384Param()),
};

function once(f: () => string): () => string {
  let v: string | undefined;
  return () => {
    v ??= f();
    return v;
  };
}

/**
 * The TPM 1.2 platform SAN is not a valid X.500 Name (§5.3), so OpenSSL refuses swtpm_cert's
 * certificate as well as ours; there the signature is checked with @peculiar/x509 and the
 * refusal must be the same.
 */
async function checkChain(tsDer: Buffer, cDer: Buffer, tpm12Platform: boolean): Promise<void> {
  const v = verify(tsDer, files.ca, work.path);
  if (!tpm12Platform) {
    assert.ok(v.ok, v.out);
    return;
  }
  const vc = verify(cDer, files.ca, work.path);
  assert.ok(!v.ok && !vc.ok, `${v.out}\n${vc.out}`);
  assert.match(v.out, /invalid certificate/);
  assert.match(vc.out, /invalid certificate/);
  const issuer = new x509.X509Certificate(readFileSync(join(files.ca, 'issuercert.pem'), 'utf8'));
  const cert = new x509.X509Certificate(tsDer);
  assert.ok(await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }));
  assert.equal(cert.issuer, issuer.subject);
}

interface Made {
  readonly bytes: Buffer;
  readonly stdout: string;
}

function make(tool: Tool, name: string, args: string[], type: string): Made {
  const dir = join(work.path, `${name}-${tool}`);
  mkdirSync(dir, { recursive: true });
  const r = runLocalca(tool, [
    ...args,
    '--dir',
    dir,
    '--configfile',
    files.conf,
    '--optsfile',
    files.opts,
  ]);
  assert.equal(r.status, 0, `${tool} ${name}: ${r.stdout}${r.stderr}`);
  assert.equal(r.stderr, '');
  const file = join(dir, type === 'platform' ? 'platform.cert' : 'ek.cert');
  assert.equal(statSync(file).mode & 0o777, 0o600, `${tool} ${name}: output mode`);
  return { bytes: readFileSync(file), stdout: r.stdout };
}

for (const [keyName, key] of Object.entries(KEYS)) {
  for (const tpm2 of [true, false]) {
    for (const type of ['ek', 'platform']) {
      // --vmid only changes the subject, so its absence is checked with one key kind.
      const vmids = keyName === 'RSA-2048' ? [VMID, undefined] : [VMID];
      for (const vmid of vmids) {
        const name = `${keyName} ${tpm2 ? 'TPM 2' : 'TPM 1.2'} ${type}${vmid ? ' --vmid' : ''}`;
        test(name, { skip }, async () => {
          const param = key();
          const args = [
            '--type',
            type,
            '--ek',
            param,
            ...tpmArgs(tpm2),
            ...(vmid !== undefined ? ['--vmid', vmid] : []),
          ];
          const slug = name.replace(/[^A-Za-z0-9]+/g, '_');
          const c = make('c', slug, args, type);
          const ts = make('ts', slug, args, type);
          const what = type === 'platform' ? 'platform' : 'EK';
          assert.equal(ts.stdout, `Successfully created ${what} certificate locally.\n`);
          assert.equal(ts.stdout, c.stdout);
          if (!tpm2) {
            // TCG_TAG_PCCLIENT_STORED_CERT, full cert, DER size + 2, FULL_CERT tag (§5.6).
            assert.deepEqual(ts.bytes.subarray(0, 7), c.bytes.subarray(0, 7));
            assert.equal(ts.bytes.readUInt16BE(0), 0x1001);
            assert.equal(ts.bytes.readUInt16BE(3), ts.bytes.length - 7 + 2);
            assert.equal(ts.bytes.readUInt16BE(5), 0x1002);
          }
          const cDer = certDer(c.bytes, tpm2);
          const tsDer = certDer(ts.bytes, tpm2);
          assert.deepEqual(asnTree(tsDer), asnTree(cDer));
          assert.equal(extText(tsDer), extText(cDer));
          await checkChain(tsDer, cDer, !tpm2 && type === 'platform');
        });
      }
    }
  }
}

// swtpm_setup never passes them (§3.2), but swtpm_localca forwards --allow-signing and
// --decryption to swtpm_cert for an EK: the keyUsage bits change (§5.3).
for (const keyName of ['RSA-2048', 'P-384'] as const) {
  for (const flags of [
    ['--allow-signing'],
    ['--allow-signing', '--decryption'],
    ['--decryption'],
  ]) {
    test(`${keyName} TPM 2 ek ${flags.join(' ')}`, { skip }, async () => {
      const args = ['--type', 'ek', '--ek', KEYS[keyName]!(), ...tpmArgs(true), ...flags];
      const slug = `${keyName}_${flags.join('')}`.replace(/[^A-Za-z0-9]+/g, '_');
      const c = make('c', slug, args, 'ek');
      const ts = make('ts', slug, args, 'ek');
      assert.deepEqual(asnTree(ts.bytes), asnTree(c.bytes));
      assert.equal(extText(ts.bytes), extText(c.bytes));
      await checkChain(ts.bytes, c.bytes, false);
    });
  }
}
