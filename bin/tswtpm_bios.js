#!/usr/bin/env node
import { main } from '../dist/src/cli/bios/tswtpm-bios.js';

// SIGUSR1 would open Node's inspector (a debugger on 127.0.0.1:9229); a listener
// replaces that trigger, as in bin/tswtpm.js.
process.on('SIGUSR1', () => {});
main(process.argv.slice(2));
