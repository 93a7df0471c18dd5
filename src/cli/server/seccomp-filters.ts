/**
 * The server's `--seccomp` programs compiled at build time (scripts/seccomp-filters.js
 * writes `seccomp-filters.json` next to this module, and next to the server bundle that
 * replaces it), read once per process. Kept apart from sandbox-setup.ts so that
 * entry.ts can ask, before anything else is loaded, whether a start needs libseccomp.
 * `TSWTPM_SECCOMP_RUNTIME=1` in the environment has libseccomp build the filter at
 * start-up instead (the tests run both ways; the filter is the same).
 */
import { join } from 'node:path';
import { type CompiledFilters, readCompiledFilters } from '../../sandbox/seccomp-compiled.js';

let read = false;
let filters: CompiledFilters | undefined;

/** The compiled programs if the build made usable ones, else undefined (libseccomp then). */
export function compiledSeccomp(): CompiledFilters | undefined {
  if (!read) {
    read = true;
    if (process.env.TSWTPM_SECCOMP_RUNTIME !== '1') {
      filters = readCompiledFilters(join(import.meta.dirname, 'seccomp-filters.json'));
    }
  }
  return filters;
}
