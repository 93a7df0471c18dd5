#!/usr/bin/env node
// First of all: SIGUSR1 would open Node's inspector (a debugger on 127.0.0.1:9229 that
// runs any code inside the TPM process). A listener replaces that trigger; the signal
// is then ignored. (src/cli/common/hardening.ts refuses --inspect and NODE_OPTIONS.)
if (require.main === module) process.on('SIGUSR1', () => {});

// This file is also where every bin finds its code in dist/ (the other bins require it
// for these helpers; only as the main module does it run `tswtpm`): the one-file bundle
// that `npm run build` makes (scripts/bundle.js; a faster start and a smaller RSS) as
// long as it is at least as new as the last tsc output, else the compiled modules. An
// installed package has no dist/.tsbuildinfo (it is not shipped): its bundles are used.
// The bins are CommonJS (bin/package.json): Node 20 starts an ES module entry about
// 12 ms later than a CommonJS one, and each more file a start requires costs it about
// 0.7 ms (docs/performance.md, "Start-up").
const { existsSync, readFileSync, statSync } = require('node:fs');
const { dirname, join } = require('node:path');
const { pathToFileURL } = require('node:url');

const DIST = join(__dirname, '..', 'dist');

const mtime = (rel) => statSync(join(DIST, rel)).mtimeMs;

/** Absolute path of `bundle` (relative to dist/) if it is usable, else undefined. */
function freshBundle(bundle) {
  // An installed package (no tsc output record): no stat() at all, whose first call
  // costs a start about 0.3 ms.
  if (!existsSync(join(DIST, '.tsbuildinfo'))) {
    return existsSync(join(DIST, bundle)) ? join(DIST, bundle) : undefined;
  }
  try {
    const built = mtime(bundle);
    let tsc = 0;
    try {
      tsc = mtime('.tsbuildinfo');
    } catch {}
    return built >= tsc ? join(DIST, bundle) : undefined;
  } catch {
    return undefined;
  }
}

/** file: URL of a module (a path relative to dist/, or absolute), for import(). */
const distUrl = (rel) => pathToFileURL(join(DIST, rel)).href;

/** The V8 code cache that scripts/code-cache.js makes for a CommonJS bundle. */
const cachePath = (bundle) => `${bundle}.v8cache`;

/** scripts/bundle.js starts a bundle with `/*tswtpm-build:<32 hex digits>*\/`. */
const BUILD_ID = /^\/\*tswtpm-build:([0-9a-f]{32})\*\//;

/**
 * Compiles and runs a CommonJS bundle as require() would (the same wrapper and
 * arguments), with V8 code cache data when given. Dynamic import() inside it goes to
 * Node's own loader.
 */
function compileBundle(bundle, cachedData, source = readFileSync(bundle, 'utf8')) {
  const vm = require('node:vm');
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
  const script = new vm.Script(wrapped, {
    filename: bundle,
    cachedData,
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const module = { exports: {} };
  // The bundle requires only Node's built-ins (koffi is loaded by path or through
  // createRequire): node:module, which loads Node's ES module loader with it (about
  // 1 ms), is loaded only if it ever requires anything else.
  let fromBundle;
  const req = (id) => {
    if (id.startsWith('node:')) return require(id);
    fromBundle ??= require('node:module').createRequire(bundle);
    return fromBundle(id);
  };
  const run = script.runInThisContext();
  run.call(module.exports, module.exports, req, module, bundle, dirname(bundle));
  return { script, buildId: BUILD_ID.exec(source)?.[1], exports: module.exports };
}

/**
 * require() of a CommonJS bundle, compiled with its code cache when there is one for
 * this very bundle (same build id); V8 itself refuses a cache made by another Node
 * version or with other V8 flags, and then compiles as usual.
 */
function requireBundle(bundle) {
  // (a Node 20 without this option could not run the bundle's dynamic import()s)
  const vmOk = require('node:vm').constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER !== undefined;
  if (!vmOk) return require(bundle);
  let cache;
  try {
    cache = readFileSync(cachePath(bundle));
  } catch {
    return require(bundle);
  }
  const source = readFileSync(bundle, 'utf8');
  const id = BUILD_ID.exec(source)?.[1];
  if (id === undefined || cache.subarray(0, id.length).toString('latin1') !== id) {
    return require(bundle);
  }
  return compileBundle(bundle, cache.subarray(id.length), source).exports;
}

module.exports = { freshBundle, distUrl, requireBundle, compileBundle, cachePath };

// `socket` and `chardev` run from the CommonJS bundle, compiled with the V8 code cache
// made at build time; anything else, or no/stale bundle, imports the modules.
if (require.main === module) {
  const argv = process.argv.slice(2);
  const bundle =
    argv[0] === 'socket' || argv[0] === 'chardev'
      ? freshBundle('src/cli/server/tswtpm.bundle.cjs')
      : undefined;
  if (bundle !== undefined) {
    requireBundle(bundle).main(argv);
  } else {
    import(distUrl('src/cli/server/entry.js')).then((m) => m.main(argv));
  }
}
