/**
 * What bin/tswtpm.js runs (as the CommonJS bundle, or as modules). Before the rest of the
 * CLI is evaluated, a server start hands the loading of libtpms and libseccomp to the
 * thread pool (engine/prefetch.ts). Then the server's own modules are initialised (with
 * the bundle, only the dynamic imports below do that): JavaScript work that runs on the
 * main thread while the pool loads the libraries. Main thread work that would touch the
 * dynamic linker in the meantime (a koffi declaration) would wait for those loads.
 */
import { join } from 'node:path';
import { deferChannels } from '../../diagnostics-channels.js';
import { loadKoffiBeside } from '../../engine/koffi.js';
import { prefetchServerLibraries } from '../../engine/prefetch.js';
import { compiledSeccomp } from './seccomp-filters.js';

/** The sub-commands that start a TPM (anything else never loads libtpms). */
const SERVES = new Set(['socket', 'chardev', 'cuse', 'host']);

export async function main(argv: string[]): Promise<void> {
  const sub = argv[0] ?? '';
  if (SERVES.has(sub) && !argv.includes('--help') && !argv.includes('-h')) {
    // (nothing has subscribed to tswtpm's channels unless a preload loaded them)
    deferChannels();
    // (this file and the bundle that replaces it are in dist/src/cli/server/)
    loadKoffiBeside(join(import.meta.dirname, '..', '..', '..', '..'));
    prefetchServerLibraries(compiledSeccomp() === undefined);
    // (the socket and chardev front end; tswtpm.ts imports it on its own too)
    if (sub === 'socket' || sub === 'chardev') await import('./server.js');
  }
  const cli = await import('./tswtpm.js');
  return cli.main(argv);
}
