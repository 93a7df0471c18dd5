#!/usr/bin/env node
// SIGUSR1 would open Node's inspector; a listener replaces that trigger (see bin/tswtpm.js).
process.on('SIGUSR1', () => {});

const { main } = await import('../dist/src/cli/localca/tswtpm-localca.js');
main(process.argv.slice(2));
