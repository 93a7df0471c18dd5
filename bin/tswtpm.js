#!/usr/bin/env node
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';

// First of all: SIGUSR1 would open Node's inspector (a debugger on 127.0.0.1:9229 that
// runs any code inside the TPM process). A listener replaces that trigger; the signal
// is then ignored. (src/cli/common/hardening.ts refuses --inspect and NODE_OPTIONS.)
process.on('SIGUSR1', () => {});

// `socket` and `chardev` run from the single-file CommonJS bundle that `npm run build`
// makes (scripts/bundle.js: a faster start and a smaller RSS), as long as it is at least
// as new as the last tsc output; anything else, or no/stale bundle, loads the modules.
// An installed package has no dist/.tsbuildinfo (it is not shipped): its bundle is used.
const argv = process.argv.slice(2);
const dist = new URL('../dist/', import.meta.url);
const mtime = (p) => statSync(new URL(p, dist)).mtimeMs;
let bundled = false;
if (argv[0] === 'socket' || argv[0] === 'chardev') {
  try {
    const bundle = mtime('src/cli/server/tswtpm.bundle.cjs');
    let tsc = 0;
    try {
      tsc = mtime('.tsbuildinfo');
    } catch {}
    bundled = bundle >= tsc;
  } catch {}
}
const { main } = bundled
  ? createRequire(import.meta.url)('../dist/src/cli/server/tswtpm.bundle.cjs')
  : await import('../dist/src/cli/server/tswtpm.js');
main(argv);
