#!/usr/bin/env node
import { statSync } from 'node:fs';

// SIGUSR1 would open Node's inspector; a listener replaces that trigger (see bin/tswtpm.js).
process.on('SIGUSR1', () => {});

// The single-file bundle that `npm run build` makes (scripts/bundle.js), as long as it is at
// least as new as the last tsc output; otherwise the modules. An installed package has no
// dist/.tsbuildinfo (it is not shipped): its bundle is used.
const dist = new URL('../dist/', import.meta.url);
const mtime = (p) => statSync(new URL(p, dist)).mtimeMs;
let bundled = false;
try {
  const bundle = mtime('src/cli/localca/tswtpm-localca.bundle.js');
  let tsc = 0;
  try {
    tsc = mtime('.tsbuildinfo');
  } catch {}
  bundled = bundle >= tsc;
} catch {}
const { main } = await import(
  bundled
    ? '../dist/src/cli/localca/tswtpm-localca.bundle.js'
    : '../dist/src/cli/localca/tswtpm-localca.js'
);
main(process.argv.slice(2));
