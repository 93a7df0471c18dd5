// Error cases and early exits, tswtpm_setup against Debian's swtpm_setup: the same exit
// codes and lines, and existing state is left as it was (where swtpm_setup 0.7.1 deletes
// it, tswtpm_setup keeps it: docs/compat.md).
import assert from 'node:assert/strict';
import {
  chmodSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '../helpers/procs.js';
import { type Ran, normalizeLog, privateConfig, runSetup } from '../helpers/setup-peers.js';

const tmp = tempDir('setup-errors-');
let conf = '';
before(() => {
  conf = privateConfig(tmp.path);
});
after(() => tmp.remove());

/** Every file of a state dir with its bytes (hex), to prove nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of readdirSync(dir).sort()) out[n] = readFileSync(join(dir, n)).toString('hex');
  return out;
}

/** The log lines of a run without swtpm_setup 0.7.1's stale-errno artefact (§1.5). */
const lines = (r: Ran) =>
  normalizeLog(r.stdout + r.stderr).filter((l) => !l.startsWith('Error getting next filename'));

let n = 0;
/** One state made by tswtpm_setup, shared by the tests that must leave it untouched. */
let made: string | undefined;
function stateDir(): string {
  const d = join(tmp.path, `s${n++}`);
  mkdirSync(d);
  return d;
}

async function madeState(): Promise<string> {
  made ??= await freshState();
  return made;
}

async function freshState(): Promise<string> {
  const d = stateDir();
  const r = await runSetup('ts', ['--tpm2', '--tpm-state', d, '--config', conf, '--createek']);
  assert.equal(r.code, 0, r.stderr);
  return d;
}

describe('tswtpm_setup error cases vs swtpm_setup', () => {
  test('--print-capabilities: swtpm_setup 0.7.1 features, version 0.10.2 (in process and --tpm)', async () => {
    const c = await runSetup('c', ['--print-capabilities']);
    const want = c.stdout.replace('"version": "0.7.1"', '"version": "0.10.2"');
    assert.equal(c.code, 0);
    for (const peer of ['ts', 'ts-on-c'] as const) {
      const t = await runSetup(peer, ['--print-capabilities']);
      assert.equal(t.code, 0);
      assert.equal(t.stdout, want, peer);
    }
  });

  test('--tpm: argv[0] is not searched in PATH; a missing program is named', async () => {
    for (const tpm of ['swtpm socket', '/nonexistent/swtpm socket']) {
      const args = ['--tpm', tpm, '--print-capabilities'];
      const c = await runSetup('c', args);
      const t = await runSetup('ts', args);
      assert.equal(c.code, 1);
      assert.deepEqual([t.code, t.stdout, t.stderr], [c.code, c.stdout, c.stderr], tpm);
    }
  });

  test('--not-overwrite on existing state: exit 0, one line, state untouched', async () => {
    for (const peer of ['c', 'ts'] as const) {
      const d = await madeState();
      const before = snapshot(d);
      const r = await runSetup(peer, [
        '--tpm2',
        '--tpm-state',
        d,
        '--config',
        conf,
        '--createek',
        '--not-overwrite',
      ]);
      assert.equal(r.code, 0, peer);
      assert.equal(r.stdout, 'Not overwriting existing state file.\n', peer);
      assert.deepEqual(snapshot(d), before, peer);
    }
  });

  test('state set aside by a killed --overwrite run is put back before anything else', async () => {
    // A run killed between setting the old state aside and its end leaves only
    // `tpm2-00.permall.tswtpm_setup-saved`. libvirt's next first start runs
    // --not-overwrite: that must find the old TPM again, not manufacture a new one.
    const d = await freshState();
    const permall = join(d, 'tpm2-00.permall');
    const before = snapshot(d);
    renameSync(permall, `${permall}.tswtpm_setup-saved`);
    const r = await runSetup('ts', [
      '--tpm2',
      '--tpm-state',
      d,
      '--config',
      conf,
      '--createek',
      '--not-overwrite',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `Restored ${permall}: an interrupted tswtpm_setup run had set it aside.\nNot overwriting existing state file.\n`,
    );
    assert.deepEqual(snapshot(d), before);
  });

  test('existing state without --overwrite: exit 1, same error, state untouched', async () => {
    for (const peer of ['c', 'ts'] as const) {
      const d = await madeState();
      const before = snapshot(d);
      const r = await runSetup(peer, ['--tpm2', '--tpm-state', d, '--config', conf, '--createek']);
      assert.equal(r.code, 1, peer);
      assert.equal(r.stderr, "Found existing TPM state 'permall'.\n", peer);
      assert.deepEqual(snapshot(d), before, peer);
    }
  });

  test('corrupt config with --overwrite: same lines and exit 1; tswtpm_setup keeps the old state', async () => {
    const bad = join(tmp.path, 'corrupt.conf');
    writeFileSync(bad, Buffer.from(Array.from({ length: 400 }, (_, i) => (i * 131 + 7) & 0xff)));
    const args = (d: string) => [
      '--tpm2',
      '--tpm-state',
      d,
      '--config',
      bad,
      '--create-ek-cert',
      '--overwrite',
    ];
    const dc = await freshState();
    const c = await runSetup('c', args(dc));
    const dt = await freshState();
    const before = snapshot(dt);
    const t = await runSetup('ts', args(dt));
    assert.equal(c.code, 1);
    assert.equal(t.code, 1);
    assert.deepEqual(lines(t), lines(c));
    assert.match(t.stderr, /Failed to open file .*ek\.cert.*No such file or directory/);
    assert.deepEqual(snapshot(dt), before);
    // swtpm_setup 0.7.1 deleted the state it was told to overwrite.
    assert.ok(!readdirSync(dc).some((f) => f.endsWith('permall')));
  });

  test('a failing new state is removed by both (unknown PCR bank)', async () => {
    for (const peer of ['c', 'ts'] as const) {
      const d = stateDir();
      const r = await runSetup(peer, [
        '--tpm2',
        '--tpm-state',
        d,
        '--config',
        conf,
        '--createek',
        '--pcr-banks',
        'foo',
      ]);
      assert.equal(r.code, 1, peer);
      assert.match(
        r.stderr,
        /^No PCR banks could be allocated\. None of the selected algorithms are supported\.\n/,
      );
      assert.deepEqual(readdirSync(d), ['.lock'], peer);
    }
  });

  test('unwritable state dir (--runas nobody): same message, exit 1', async () => {
    chmodSync(tmp.path, 0o755);
    const d = stateDir();
    chmodSync(d, 0o755);
    const results: Ran[] = [];
    for (const peer of ['c', 'ts'] as const) {
      results.push(
        await runSetup(peer, [
          '--tpm2',
          '--tpm-state',
          d,
          '--config',
          conf,
          '--createek',
          '--runas',
          'nobody',
        ]),
      );
    }
    for (const r of results) {
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `Need write rights on directory ${d} for user nobody.\n`);
    }
    assert.deepEqual(readdirSync(d), []);
  });

  test('wrong key on --reconfigure: exit 1, the encrypted state is kept (C 0.7.1 hangs here)', async () => {
    const k1 = join(tmp.path, 'k1');
    const k2 = join(tmp.path, 'k2');
    writeFileSync(k1, '00112233445566778899aabbccddeeff\n');
    writeFileSync(k2, 'ffeeddccbbaa99887766554433221100\n');
    const d = stateDir();
    const base = ['--tpm2', '--tpm-state', d, '--config', conf];
    assert.equal((await runSetup('c', [...base, '--createek', '--keyfile', k1])).code, 0);
    const before = snapshot(d);
    for (const peer of ['ts', 'ts-on-c'] as const) {
      const r = await runSetup(peer, [
        ...base,
        '--reconfigure',
        '--pcr-banks',
        'sha1',
        '--keyfile',
        k2,
      ]);
      assert.equal(r.code, 1, peer);
      // In process the start itself fails; C swtpm dies after writing its pid file.
      const end = peer === 'ts' ? 'Could not start the TPM 2\\.\\n' : '';
      assert.match(
        r.stderr,
        new RegExp(`${end}An error occurred\\. Authoring the TPM state failed\\.\\n$`),
        peer,
      );
      assert.deepEqual(snapshot(d), before, peer);
    }
    const ok = await runSetup('ts', [
      ...base,
      '--reconfigure',
      '--pcr-banks',
      'sha1',
      '--keyfile',
      k1,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Successfully activated PCR banks sha1 among/);
  });

  test('--help exits 0 with the usage; --version exits 0 (0.10)', async () => {
    const h = await runSetup('ts', ['--help']);
    assert.equal(h.code, 0);
    assert.match(
      h.stdout,
      /^TPM emulator setup tool version 0\.10\.2\nUsage: tswtpm_setup \[options\]/,
    );
    assert.match(h.stdout, /default is \S*swtpm_setup\.conf/);
    const v = await runSetup('ts', ['--version']);
    assert.deepEqual([v.code, v.stdout], [0, 'TPM emulator setup tool version 0.10.2\n']);
    const bad = await runSetup('ts', ['--bogus']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unrecognized option '--bogus'/);
  });
});
