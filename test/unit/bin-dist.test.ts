// bin/tswtpm.js: how it loads the CommonJS server bundle with the V8 code cache
// that scripts/code-cache.js makes at build time. The cache is only ever used with the
// bundle it was made from (the build id on the bundle's first line): V8's own check
// compares little more than the source length, so a cache of another same-length
// bundle would run that other bundle's code.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/procs.js';

interface Compiled {
  readonly script: { cachedDataRejected?: boolean; createCachedData(): Buffer };
  readonly buildId: string | undefined;
  readonly exports: Record<string, unknown>;
}
interface BinDist {
  requireBundle(bundle: string): Record<string, unknown>;
  compileBundle(bundle: string, cachedData?: Buffer): Compiled;
  cachePath(bundle: string): string;
}

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dist = createRequire(import.meta.url)(join(ROOT, 'bin', 'tswtpm.js')) as BinDist;
const BUNDLE = join(ROOT, 'dist/src/cli/server/tswtpm.bundle.cjs');

const dir = tempDir();
after(() => dir.remove());

/** A one-line bundle with build id `id` (32 hex digits) exporting `v`. */
function bundle(name: string, id: string, v: string): string {
  const path = join(dir.path, `${name}.cjs`);
  writeFileSync(path, `/*tswtpm-build:${id}*/\nmodule.exports = { v: '${v}' };\n`);
  return path;
}

describe('bin/tswtpm.js code cache', () => {
  it('the cache the build made is accepted by this node for the built bundle', () => {
    const cache = readFileSync(dist.cachePath(BUNDLE));
    const id = /^\/\*tswtpm-build:([0-9a-f]{32})\*\//.exec(readFileSync(BUNDLE, 'latin1'))?.[1];
    assert.ok(id !== undefined, 'the bundle starts with its build id');
    assert.equal(cache.subarray(0, 32).toString('latin1'), id, 'the cache names that build');
    const c = dist.compileBundle(BUNDLE, cache.subarray(32));
    assert.equal(c.script.cachedDataRejected, false);
    assert.equal(typeof c.exports.main, 'function');
  });

  it("another build's cache is never used, even for a bundle of the same length", () => {
    const a = bundle('a', 'a'.repeat(32), 'A');
    const b = bundle('b', 'b'.repeat(32), 'B');
    const made = dist.compileBundle(b);
    const bCache = made.script.createCachedData();
    // What the id check guards against: V8 takes B's cache for A (same length) and runs B.
    const unchecked = dist.compileBundle(a, bCache);
    const v8Took = unchecked.script.cachedDataRejected === false;
    // requireBundle() with B's cache stored as A's: A's own code runs.
    writeFileSync(dist.cachePath(a), Buffer.concat([Buffer.from('b'.repeat(32)), bCache]));
    assert.equal(dist.requireBundle(a).v, 'A', `V8 alone ${v8Took ? 'accepted' : 'refused'} it`);
    // With A's own cache it is used and gives A.
    const aCache = dist.compileBundle(a).script.createCachedData();
    writeFileSync(dist.cachePath(a), Buffer.concat([Buffer.from('a'.repeat(32)), aCache]));
    assert.equal(dist.compileBundle(a, aCache).script.cachedDataRejected, false);
  });
});
