#!/usr/bin/env node
// SIGUSR1 would open Node's inspector (a debugger on 127.0.0.1:9229 that runs any code in
// this process); a listener replaces that trigger before anything else loads (see
// bin/tswtpm.js).
process.on('SIGUSR1', () => {});

const { distUrl } = require('./tswtpm.js');

import(distUrl('src/cli/ioctl/tswtpm-ioctl.js')).then((m) => m.main(process.argv.slice(2)));
