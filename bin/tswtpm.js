#!/usr/bin/env node
// First of all: SIGUSR1 would open Node's inspector (a debugger on 127.0.0.1:9229 that
// runs any code inside the TPM process). A listener replaces that trigger; the signal
// is then ignored. (src/cli/common/hardening.ts refuses --inspect and NODE_OPTIONS.)
process.on('SIGUSR1', () => {});

const { freshBundle, distUrl, requireBundle } = require('./dist.js');

// `socket` and `chardev` run from the CommonJS bundle, compiled with the V8 code cache
// made at build time (bin/dist.js); anything else, or no/stale bundle, imports the modules.
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
