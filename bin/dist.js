// Where each bin finds its code in dist/: the one-file bundle that `npm run build` makes
// (scripts/bundle.js; a faster start and a smaller RSS) as long as it is at least as new
// as the last tsc output, else the compiled modules. An installed package has no
// dist/.tsbuildinfo (it is not shipped): its bundles are used.
// The bins are CommonJS (bin/package.json): Node 20 starts an ES module entry about
// 12 ms later than a CommonJS one (docs/performance.md, "Start-up").
const { statSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const DIST = join(__dirname, '..', 'dist');

const mtime = (rel) => statSync(join(DIST, rel)).mtimeMs;

/** Absolute path of `bundle` (relative to dist/) if it is usable, else undefined. */
function freshBundle(bundle) {
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

module.exports = { freshBundle, distUrl };
