#!/usr/bin/env node
// SIGUSR1 would open Node's inspector; a listener replaces that trigger (see bin/tswtpm.js).
process.on('SIGUSR1', () => {});

const { distUrl } = require('./tswtpm.js');

import(distUrl('src/cli/setup/tswtpm-setup.js')).then((m) => m.main(process.argv.slice(2)));
