#!/usr/bin/env node
// Bundles the compiled CLI (dist/src/cli/server/entry.js and what it imports) into one
// CommonJS file, dist/src/cli/server/tswtpm.bundle.cjs, which bin/tswtpm.js require()s
// for `socket` and `chardev` (and dist/src/cli/localca/tswtpm-localca.bundle.js, an ES
// module, for bin/tswtpm_localca.js). Node 20 loads each ES module separately (resolve,
// read, compile, link): for the 40-odd modules of a server start that was 20-30 ms and
// 4 MiB of RSS. One ES module file was still slow: import() of the 270 KB ESM server
// bundle cost about 3 times the CPU of require() of the same code as CommonJS
// (docs/performance.md, "Start-up"), so the server's bundle is CommonJS.
// A bundle sits next to the modules it replaces, so import.meta.url paths (package.json,
// koffi through createRequire, ./cuse.js) resolve the same (in the CommonJS bundle,
// import.meta.url becomes the bundle's own file URL). koffi stays external.
// Without esbuild (tsc-only builds) this does nothing and the bins load the modules.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// tswtpm_localca is bundled too: swtpm_setup runs it once per certificate, and loading its
// ~150 modules (@peculiar/x509, asn1js, tsyringe) was most of each run (0.5 s -> 0.3 s idle).
const ENTRIES = [
  { name: 'server/entry', format: 'cjs', out: 'server/tswtpm.bundle.cjs' },
  { name: 'localca/tswtpm-localca', format: 'esm', out: 'localca/tswtpm-localca.bundle.js' },
];
const url = (p) => fileURLToPath(new URL(`../dist/src/cli/${p}`, import.meta.url));
/**
 * import.meta in a CommonJS bundle: `dirname` and `filename` are the bundle's own
 * (__dirname, __filename), and `url` its file URL, made only when it is read (node:url's
 * URL functions cost a start about 0.3 ms the first time; the start path uses dirname).
 * The first line names the build, so that bin/tswtpm.js uses a V8 code cache only with
 * the bundle it was made for (scripts/code-cache.js makes it).
 */
const cjsOptions = () => ({
  define: {
    'import.meta.url': '__tswtpm_meta.url',
    'import.meta.dirname': '__dirname',
    'import.meta.filename': '__filename',
  },
  banner: {
    js: `/*tswtpm-build:${randomBytes(16).toString('hex')}*/\nconst __tswtpm_meta = { get url() { return require("node:url").pathToFileURL(__filename).href; } };`,
  },
});

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.error('bundle: esbuild not installed; bin/tswtpm.js will load the modules');
  process.exit(0);
}
for (const e of ENTRIES) {
  const entry = url(`${e.name}.js`);
  statSync(entry); // run after tsc
  // (a cache is only ever used with the bundle it was made from: see cjsOptions)
  rmSync(`${url(e.out)}.v8cache`, { force: true });
  await esbuild.build({
    entryPoints: [entry],
    outfile: url(e.out),
    bundle: true,
    platform: 'node',
    format: e.format,
    target: 'node20',
    external: ['koffi'],
    ...(e.format === 'cjs' ? cjsOptions() : {}),
    // No comments or indentation (names are kept): 30 % less to read and parse, and an
    // all-ASCII file, which Node decodes on its fast path (3-4 ms less per start here).
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: true,
    logLevel: 'warning',
  });
}

// The server bundle's V8 code cache (a start of the bundle in a child process). Tried
// again when none was made: its TCP port, free a moment before, can be taken by another
// process before the start binds it.
const cacheFile = `${url(ENTRIES[0].out)}.v8cache`;
for (let attempt = 1; attempt <= 3 && !existsSync(cacheFile); attempt++) {
  spawnSync(process.execPath, [fileURLToPath(new URL('./code-cache.js', import.meta.url))], {
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 60_000,
  });
}
if (!existsSync(cacheFile)) {
  console.error('bundle: no code cache made; bin/tswtpm.js compiles the bundle');
}
