#!/usr/bin/env node
// SIGUSR1 would open Node's inspector (a debugger on 127.0.0.1:9229); a listener
// replaces that trigger, as in bin/tswtpm.js.
process.on('SIGUSR1', () => {});

const { distUrl } = require('./tswtpm.js');

import(distUrl('src/cli/bios/tswtpm-bios.js')).then((m) => m.main(process.argv.slice(2)));
