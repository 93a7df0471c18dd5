// src/engine/koffi.ts: how koffi's native module is found. A `tswtpm` server loads it
// by path from where npm puts it (loadKoffiBeside), hoisted beside the package or in its
// own node_modules, and falls back to require() when it is not there. Each case runs
// in a fresh process: koffi is loaded once per process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const KOFFI = fileURLToPath(new URL('../../src/engine/koffi.js', import.meta.url));
const PREBUILT = join('@koromix', `koffi-linux-${process.arch}`, `linux_${process.arch}`);

const work = mkdtempSync(join(tmpdir(), 'tswtpm-koffi-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Runs loadKoffiBeside(root), then a libc call through requireKoffi(); what it saw. */
function probe(root: string): { pid: boolean; cached: boolean; mapped: string[] } {
  const script = `
    import { readFileSync } from 'node:fs';
    import { createRequire } from 'node:module';
    const { loadKoffiBeside, requireKoffi } = await import(${JSON.stringify(KOFFI)});
    loadKoffiBeside(${JSON.stringify(root)});
    const koffi = requireKoffi();
    const pid = koffi.load('libc.so.6').func('int getpid(void)')() === process.pid;
    const cached = Object.keys(createRequire(import.meta.url).cache).some((k) => k.endsWith('koffi.node'));
    const mapped = [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n')
      .map((l) => l.split(/\\s+/)[5] ?? '').filter((f) => f.endsWith('koffi.node')))];
    console.log(JSON.stringify({ pid, cached, mapped }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const skip = process.platform === 'linux' ? false : 'koffi prebuilt layout of glibc Linux';

test(
  'this checkout: koffi is loaded by path from its node_modules, outside require()',
  { skip },
  () => {
    const r = probe(ROOT);
    assert.deepEqual(r, {
      pid: true,
      cached: false,
      mapped: [join(ROOT, 'node_modules', PREBUILT, 'koffi.node')],
    });
  },
);

test('an installed package with koffi hoisted beside it: that file is loaded', { skip }, () => {
  const modules = join(work, 'proj', 'node_modules');
  const pkg = join(modules, 'tswtpm');
  mkdirSync(pkg, { recursive: true });
  cpSync(join(ROOT, 'node_modules', PREBUILT), join(modules, PREBUILT), { recursive: true });
  const r = probe(pkg);
  assert.deepEqual(r, {
    pid: true,
    cached: false,
    mapped: [join(modules, PREBUILT, 'koffi.node')],
  });
});

test('nothing where npm would put it: require() finds koffi as before', { skip }, () => {
  const r = probe(join(work, 'nowhere'));
  assert.equal(r.pid, true);
  assert.equal(r.cached, true);
  assert.deepEqual(r.mapped, [join(ROOT, 'node_modules', PREBUILT, 'koffi.node')]);
});
