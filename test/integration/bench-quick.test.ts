// Runs the side-by-side benchmark in its quick mode (a few seconds) so it never rots.
// Asserts only that it produced a well-formed table and JSON, never on timings.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));
const haveSwtpm = spawnSync('swtpm', ['--version']).status === 0;

const ROW_IDS = [
  'startup.first-response',
  'startup.rss',
  'data.tcp.getrandom',
  'data.tcp.pcrextend',
  'data.unix.getrandom',
  'data.unix.pcrextend',
  'ctrl.tcp.getcapability',
  'ctrl.unix.getcapability',
  'blob.get.permanent',
  'blob.set.permanent',
  'key.createprimary.rsa2048',
  'ctrl.during-keygen.getcapability',
  'key.createprimary.rsa3072',
  'tcti.tcp.getrandom',
  'instances.rss',
  'instances.mem',
  'instances.rate',
];

interface StatJson {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

function assertStat(s: StatJson | undefined, what: string): void {
  assert.ok(s !== undefined, `${what}: missing`);
  for (const k of ['median', 'min', 'max'] as const) {
    assert.equal(typeof s[k], 'number', `${what}.${k}`);
    assert.ok(Number.isFinite(s[k]) && s[k] >= 0, `${what}.${k} = ${s[k]}`);
  }
  assert.ok(s.min <= s.median && s.median <= s.max, `${what}: min ≤ median ≤ max`);
  assert.ok(Array.isArray(s.samples) && s.samples.length > 0, `${what}.samples`);
}

it('npm run bench -- --quick: a well-formed table and JSON', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tswtpm-bench-test-'));
  try {
    const out = join(dir, 'latest.json');
    // (a variable that slows every Node start: the bench removes it for its children)
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt' };
    const r = spawnSync(process.execPath, [RUN, '--quick', '--out', out], {
      encoding: 'utf8',
      timeout: 170_000,
      env,
    });
    assert.equal(r.status, 0, `bench exited ${r.status}: ${r.stderr}`);

    const lines = r.stdout.split('\n').filter((l) => l.startsWith('|'));
    assert.match(
      lines[0] ?? '',
      /^\| Figure +\| tswtpm +\| swtpm 0\.7\.1 +\| ratio +\| Node floor/,
    );
    assert.match(lines[1] ?? '', /^\| -+ \| -+ \|/);
    const cols = (lines[0] ?? '').split('|').length;
    for (const l of lines) assert.equal(l.split('|').length, cols, `ragged row: ${l}`);

    const json = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(json.schema, 'tswtpm-bench/1');
    assert.equal(json.quick, true);
    assert.equal(typeof json.machine.node, 'string');
    assert.equal(typeof json.machine.cores, 'number');
    assert.deepEqual(json.machine.envRemoved, ['NODE_EXTRA_CA_CERTS']);
    assert.match(r.stdout, /environment: NODE_EXTRA_CA_CERTS removed for every process started/);
    const ids = json.rows.map((x: { id: string }) => x.id);
    for (const id of ROW_IDS) assert.ok(ids.includes(id), `row ${id} missing`);
    assert.equal(lines.length - 2, json.rows.length, 'one table line per JSON row');
    for (const row of json.rows) {
      assertStat(row.tswtpm, `${row.id}.tswtpm`);
      if (haveSwtpm) {
        assertStat(row.swtpm, `${row.id}.swtpm`);
        assert.equal(typeof row.ratio, 'number', `${row.id}.ratio`);
      }
      if (row.target !== undefined) assert.equal(typeof row.target.limit, 'number');
      if (row.met !== undefined) assert.equal(typeof row.met, 'boolean');
    }
    for (const id of ['startup.first-response', 'startup.rss', 'data.tcp.getrandom']) {
      assertStat(json.rows.find((x: { id: string }) => x.id === id).floor, `${id}.floor`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
