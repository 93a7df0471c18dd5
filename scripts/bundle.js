#!/usr/bin/env node
// Bundles the compiled CLI (dist/src/cli/server/tswtpm.js and what it imports) into one file,
// dist/src/cli/server/tswtpm.bundle.js, which bin/tswtpm.js runs for `socket` and `chardev`
// (and likewise dist/src/cli/localca/tswtpm-localca.bundle.js for bin/tswtpm_localca.js).
// Node 20 loads each ES module separately (resolve, read, compile, link): for the 40-odd
// modules of a server start that is about 20-30 ms and 4 MiB of RSS (docs/performance.md).
// The bundle sits next to the modules it replaces, so import.meta.url paths (package.json,
// koffi through createRequire, ./cuse.js) resolve the same. koffi stays external.
// Without esbuild (tsc-only builds) this does nothing and bin/tswtpm.js loads the modules.
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// tswtpm_localca is bundled too: swtpm_setup runs it once per certificate, and loading its
// ~150 modules (@peculiar/x509, asn1js, tsyringe) was most of each run (0.5 s -> 0.3 s idle).
const ENTRIES = ['server/tswtpm', 'localca/tswtpm-localca'];
const url = (p) => fileURLToPath(new URL(`../dist/src/cli/${p}`, import.meta.url));

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.error('bundle: esbuild not installed; bin/tswtpm.js will load the modules');
  process.exit(0);
}
for (const e of ENTRIES) {
  const entry = url(`${e}.js`);
  statSync(entry); // run after tsc
  await esbuild.build({
    entryPoints: [entry],
    outfile: url(`${e}.bundle.js`),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['koffi'],
    sourcemap: true,
    logLevel: 'warning',
  });
}
