#!/usr/bin/env node
// Coverage-guided fuzzing of every parser of outside bytes with Jazzer.js (libFuzzer).
// See docs/reliability.md. Run after `npm run build`.
//
//   node scripts/fuzz.js [target ...]            CI: replay test/fuzz/corpus/<target>/,
//                                                then fuzz each target --seconds (4) s
//   node scripts/fuzz.js --long [--runs N] [...] N executions per target (1,000,000),
//                                                then merge new coverage into the corpus
//   node scripts/fuzz.js --merge [target ...]    minimise the stored corpus
//   node scripts/fuzz.js --list
//
// Each target (dist/test/fuzz/targets/<t>.js) is bundled to CommonJS first: Jazzer.js
// 2.x instruments code through the require hook only, and our modules are ESM.
// A finding leaves libFuzzer's crash-/timeout-/oom- file under
// $TMPDIR/tswtpm-fuzz/artifacts/; a fixed one goes into the corpus as a regression input.
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureAddon } from './fuzz-addon.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const targetsDir = join(root, 'dist/test/fuzz/targets');
const bundleDir = join(root, 'dist/fuzz');
const corpusRoot = join(root, 'test/fuzz/corpus');
const jazzerCli = join(root, 'node_modules/@jazzer.js/core/dist/cli.js');

/** Largest input per target: sessions take request sequences, codecs one message. */
const MAX_LEN = { 'ctrl-session': 9000, 'cuse-session': 16384, 'state-blob': 8192 };
const NOT_TARGETS = new Set(['props.js', 'device.js']);

function parseArgs(argv) {
  const o = { mode: 'ci', seconds: 4, runs: 1_000_000, names: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--long') o.mode = 'long';
    else if (a === '--merge') o.mode = 'merge';
    else if (a === '--list') o.mode = 'list';
    else if (a === '--ci') o.mode = 'ci';
    else if (a === '--seconds') o.seconds = Number(argv[++i]);
    else if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a.startsWith('-')) throw new Error(`fuzz: unknown option ${a}`);
    else o.names.push(a);
  }
  return o;
}

function allTargets() {
  return readdirSync(targetsDir)
    .filter((f) => f.endsWith('.js') && !NOT_TARGETS.has(f))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function bundle(names) {
  const esbuild = await import('esbuild');
  mkdirSync(bundleDir, { recursive: true });
  // Our package is "type": "module"; the bundles are CommonJS.
  writeFileSync(join(bundleDir, 'package.json'), '{ "type": "commonjs" }\n');
  await esbuild.build({
    entryPoints: names.map((n) => join(targetsDir, `${n}.js`)),
    outdir: bundleDir,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['koffi'],
    // createRequire(import.meta.url) (koffi, node:crypto) needs a real URL in CommonJS.
    define: { 'import.meta.url': '__fuzzImportMetaUrl' },
    banner: { js: 'const __fuzzImportMetaUrl = require("url").pathToFileURL(__filename).href;' },
    logLevel: 'warning',
  });
}

/** Runs Jazzer.js on one target; returns { ok, stats, output }. */
function jazzer(name, corpusDirs, fuzzerArgs, artifacts) {
  mkdirSync(artifacts, { recursive: true });
  const args = [
    jazzerCli,
    join(bundleDir, `${name}.js`),
    ...corpusDirs,
    '--sync',
    '--timeout=10000',
    '--disable_bug_detectors=.*',
    '--',
    `-max_len=${MAX_LEN[name] ?? 4096}`,
    '-rss_limit_mb=2048',
    `-artifact_prefix=${artifacts}/`,
    '-print_final_stats=1',
    ...fuzzerArgs,
  ];
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const stat = (k) => Number(new RegExp(`stat::${k}:\\s+(\\d+)`).exec(output)?.[1] ?? Number.NaN);
  const stats = {
    execs: stat('number_of_executed_units'),
    execPerSec: stat('average_exec_per_sec'),
    peakRssMb: stat('peak_rss_mb'),
    seconds: Number(/Done \d+ runs in (\d+) second/.exec(output)?.[1] ?? Number.NaN),
    cov: Number(/DONE\s+cov: (\d+)/.exec(output)?.[1] ?? Number.NaN),
  };
  return { ok: r.status === 0, status: r.status, signal: r.signal, stats, output };
}

function corpusOf(name) {
  const dir = join(corpusRoot, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function report(name, r, artifacts) {
  const s = r.stats;
  const line = `${name}: ${r.ok ? 'ok' : 'FAILED'} ${s.execs} execs, ${s.execPerSec} exec/s, cov ${s.cov}, peak RSS ${s.peakRssMb} MB`;
  console.log(line);
  if (!r.ok) {
    console.log(r.output.split('\n').slice(-60).join('\n'));
    const found = existsSync(artifacts) ? readdirSync(artifacts) : [];
    console.log(
      `fuzz: ${name} exited with ${r.status ?? r.signal}; artifacts in ${artifacts}: ${found.join(' ')}`,
    );
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const all = allTargets();
  if (o.mode === 'list') {
    console.log(all.join('\n'));
    return 0;
  }
  const names = o.names.length ? o.names : all;
  for (const n of names) if (!all.includes(n)) throw new Error(`fuzz: no target ${n}`);
  const addon = ensureAddon(root);
  await bundle(names);
  const work = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), 'tswtpm-fuzz-'));
  let failed = 0;
  for (const name of names) {
    const artifacts = join(work, 'artifacts', name);
    const corpus = corpusOf(name);
    const fresh = join(work, 'new', name);
    mkdirSync(fresh, { recursive: true });
    let r;
    if (o.mode === 'ci') {
      // New inputs go to the scratch directory; the stored corpus is only read.
      r = jazzer(name, [fresh, corpus], [`-max_total_time=${o.seconds}`], artifacts);
    } else if (o.mode === 'long') {
      r = jazzer(name, [fresh, corpus], [`-runs=${o.runs}`], artifacts);
      if (r.ok) {
        const m = jazzer(name, [corpus, fresh], ['-merge=1'], artifacts);
        if (!m.ok) console.log(m.output.split('\n').slice(-20).join('\n'));
      }
      const rec = {
        date: new Date().toISOString(),
        target: name,
        jazzer: addon.version,
        libFuzzer: addon.libFuzzer,
        ok: r.ok,
        ...r.stats,
        corpusFiles: readdirSync(corpus).length,
      };
      appendFileSync(join(root, 'test/fuzz/long-runs.jsonl'), `${JSON.stringify(rec)}\n`);
    } else {
      const min = join(work, 'min', name);
      mkdirSync(min, { recursive: true });
      r = jazzer(name, [min, corpus], ['-merge=1'], artifacts);
      if (r.ok) {
        rmSync(corpus, { recursive: true });
        cpSync(min, corpus, { recursive: true });
        console.log(`${name}: corpus minimised to ${readdirSync(corpus).length} files`);
      }
    }
    report(name, r, artifacts);
    if (!r.ok) failed++;
  }
  if (failed === 0) rmSync(work, { recursive: true, force: true });
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  },
);
