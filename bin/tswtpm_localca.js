#!/usr/bin/env node
// SIGUSR1 would open Node's inspector; a listener replaces that trigger (see bin/tswtpm.js).
process.on('SIGUSR1', () => {});

const { freshBundle, distUrl } = require('./tswtpm.js');

const entry = freshBundle('src/cli/localca/tswtpm-localca.bundle.js')
  ? 'src/cli/localca/tswtpm-localca.bundle.js'
  : 'src/cli/localca/tswtpm-localca.js';
import(distUrl(entry)).then((m) => m.main(process.argv.slice(2)));
