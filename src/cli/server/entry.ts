/**
 * What bin/tswtpm.js runs (as the CommonJS bundle, or as modules). Before the rest of the
 * CLI is evaluated, a server start hands the loading of libtpms and libseccomp to the
 * thread pool (engine/prefetch.ts): with the bundle, the CLI's modules are initialised
 * only by the dynamic import below, in parallel with those loads.
 */
import { prefetchServerLibraries } from '../../engine/prefetch.js';

/** The sub-commands that start a TPM (anything else never loads libtpms). */
const SERVES = new Set(['socket', 'chardev', 'cuse', 'host']);

export async function main(argv: string[]): Promise<void> {
  if (SERVES.has(argv[0] ?? '') && !argv.includes('--help') && !argv.includes('-h')) {
    prefetchServerLibraries();
  }
  const cli = await import('./tswtpm.js');
  return cli.main(argv);
}
