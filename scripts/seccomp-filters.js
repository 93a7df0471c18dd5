#!/usr/bin/env node
// Compiles the server's `--seccomp` filters at build time (run by `npm run build` after
// tsc): libseccomp builds the `kill` and `log` programs exactly as the server would at
// start-up and exports them to dist/src/cli/server/seccomp-filters.json, which a start
// loads with one seccomp() call (src/sandbox/seccomp-compiled.ts). Without libseccomp
// on the build machine no file is written and the server uses libseccomp at run time.
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const OUT = fileURLToPath(new URL('../dist/src/cli/server/seccomp-filters.json', import.meta.url));
const dist = (rel) => new URL(`../dist/src/${rel}`, import.meta.url).href;

const { loadLibseccomp } = await import(dist('sandbox/seccomp.js'));
const { compileFilters } = await import(dist('sandbox/seccomp-compiled.js'));

rmSync(OUT, { force: true });
let lib;
try {
  lib = loadLibseccomp();
} catch (err) {
  console.error(
    `seccomp-filters: no libseccomp (${err.message}); the server builds its filter at start-up`,
  );
  process.exit(0);
}
const filters = compileFilters(lib, join(tmpdir(), `tswtpm-seccomp-${process.pid}.bpf`));
writeFileSync(OUT, `${JSON.stringify(filters)}\n`);
