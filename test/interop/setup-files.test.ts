// Files tswtpm_setup writes besides the state, against Debian's swtpm_setup: --logfile
// (all lines in the file, only the listening line on stdout), --write-ek-cert-files
// (DER certificates, mode 0640) and --create-config-files (the three user config files).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { tempDir } from '../helpers/procs.js';
import { normalizeLog, privateConfig, runProgram, runSetup } from '../helpers/setup-peers.js';

const tmp = tempDir('setup-files-');
let conf = '';
before(() => {
  conf = privateConfig(tmp.path);
});
after(() => tmp.remove());

test('--logfile and --write-ek-cert-files: same log file lines and certificate files', async () => {
  const logs: string[][] = [];
  const files: string[][] = [];
  for (const peer of ['c', 'ts', 'ts-on-c'] as const) {
    const dir = join(tmp.path, `state-${peer}`);
    const certs = join(tmp.path, `certs-${peer}`);
    mkdirSync(dir);
    mkdirSync(certs);
    const logfile = join(tmp.path, `${peer}.log`);
    const r = await runSetup(peer, [
      '--tpm2',
      '--tpm-state',
      dir,
      '--config',
      conf,
      '--create-ek-cert',
      '--logfile',
      logfile,
      '--write-ek-cert-files',
      certs,
    ]);
    assert.equal(r.code, 0, `${peer}: ${r.stderr}`);
    assert.equal(r.stdout, 'TPM is listening on Unix socket.\n', peer);
    logs.push(normalizeLog(readFileSync(logfile, 'utf8').replaceAll(logfile, '<log>')));
    const names = readdirSync(certs).sort();
    files.push(names);
    for (const n of names) {
      assert.equal(statSync(join(certs, n)).mode & 0o777, 0o640, `${peer} ${n}`);
      const x = await runProgram('openssl', [
        'x509',
        '-inform',
        'der',
        '-in',
        join(certs, n),
        '-noout',
      ]);
      assert.equal(x.code, 0, `${peer} ${n}: ${x.stderr}`);
    }
  }
  assert.deepEqual(files[0], ['ek-rsa2048.crt', 'ek-secp384r1.crt']);
  assert.deepEqual(files[1], files[0]);
  assert.deepEqual(files[2], files[0]);
  assert.ok(logs[0]!.includes('Successfully created EK certificate locally.'));
  assert.deepEqual(logs[1], logs[0]);
  assert.deepEqual(logs[2], logs[0]);
});

test('--create-config-files: same files (but the tool path), refusals and skip-if-exist', async () => {
  const out: Array<Record<string, string>> = [];
  for (const peer of ['c', 'ts'] as const) {
    const home = join(tmp.path, `xdg-${peer}`);
    mkdirSync(home);
    const env = { ...process.env, XDG_CONFIG_HOME: home };
    const r = await runSetup(peer, ['--create-config-files', 'root'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout.replaceAll(home, '<cfg>'),
      ['swtpm_setup.conf', 'swtpm-localca.conf', 'swtpm-localca.options']
        .map((f) => `Writing <cfg>/${f}.\n`)
        .join(''),
    );
    assert.ok(statSync(join(home, 'var/lib/swtpm-localca')).isDirectory());
    const files: Record<string, string> = {};
    for (const f of readdirSync(home).filter((n) => n !== 'var')) {
      files[f] = readFileSync(join(home, f), 'utf8')
        .replaceAll(home, '<cfg>')
        .replace(/^create_certs_tool = .*$/m, 'create_certs_tool = <tool>');
    }
    out.push(files);
    const again = await runSetup(peer, ['--create-config-files', 'root'], env);
    assert.equal(again.code, 1);
    assert.equal(
      again.stderr,
      `File ${home}/swtpm_setup.conf already exists. Refusing to overwrite.\n`,
    );
    const skip = await runSetup(peer, ['--create-config-files', 'root,skip-if-exist'], env);
    assert.deepEqual([skip.code, skip.stdout, skip.stderr], [0, '', '']);
    const noRoot = await runSetup(peer, ['--create-config-files'], env);
    assert.equal(noRoot.code, 1);
    assert.match(noRoot.stderr, /^Requiring the 'root' flag/);
  }
  assert.deepEqual(out[1], out[0]);
});
