/**
 * `npm run bench [-- --quick] [-- --out FILE]`: tswtpm side by side with Debian's C
 * `swtpm socket --tpm2`, driven by one client, alternating, after a warm-up. Prints a
 * Markdown table and writes the same figures as JSON (bench/results/latest.json).
 * Without swtpm installed only tswtpm's figures are reported.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Pair,
  type Sizes,
  createPrimary,
  ctrlDuringKeygen,
  ctrlRoundTrip,
  dataRoundTrips,
  libraryClient,
  stateBlobs,
  tctiPattern,
} from './cases.js';
import { REMOVED_BY_PARENT, benchEnvironment, environmentNote } from './env.js';
import { instanceRows } from './instances.js';
import { type Row, table } from './report.js';
import { type Program, type Server, copyState, startServer, swtpmVersion } from './servers.js';
import { measureStartup, startupRows } from './startup.js';
import { prepareState } from './state.js';

// Many short alternating repetitions rather than a few long ones: on a shared 2-vCPU
// VM the speed of the whole machine drifts within seconds, and both servers must see
// the same drift for the ratio to mean anything.
const FULL: Sizes = {
  warmup: 3000,
  n: 2000,
  reps: 15,
  nConnect: 200,
  nBlob: 300,
  nKey: 3,
  repsKey: 5,
  repsLong: 3,
};

const QUICK: Sizes = {
  warmup: 200,
  n: 200,
  reps: 3,
  nConnect: 30,
  nBlob: 10,
  nKey: 1,
  repsKey: 2,
  repsLong: 1,
};

export interface BenchResult {
  readonly schema: 'tswtpm-bench/1';
  readonly date: string;
  readonly quick: boolean;
  readonly machine: Record<string, unknown>;
  readonly sizes: Sizes & { readonly startupReps: number; readonly nvIndices: number };
  readonly rows: readonly Row[];
}

/** Whether bin/tswtpm.js runs the one-file bundle (the same test as the bin makes). */
function bundleFresh(): boolean {
  const mtime = (p: string) => statSync(new URL(`../../dist/${p}`, import.meta.url)).mtimeMs;
  try {
    return mtime('src/cli/server/tswtpm.bundle.cjs') >= mtime('.tsbuildinfo');
  } catch {
    return false;
  }
}

/** What {@link benchEnvironment} removed from every child's environment. */
let envRemoved: string[] = [];

function machine(swtpm: string | undefined): Record<string, unknown> {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
  const libtpms = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'libtpms0'], {
    encoding: 'utf8',
  });
  return {
    cpu: model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    kernel: release(),
    swtpm: swtpm ?? null,
    libtpms: libtpms.status === 0 ? libtpms.stdout : null,
    loadavg: loadavg().map((x) => Number(x.toFixed(2))),
    tswtpmEntry: bundleFresh() ? 'bundle' : 'modules',
    pinnedToCpu: process.env.TSWTPM_BENCH_PINNED ?? null,
    envRemoved,
  };
}

function parseArgs(argv: string[]): { quick: boolean; out: string; pin: string | undefined } {
  let quick = false;
  let pin: string | undefined;
  let out = fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') quick = true;
    else if (a === '--out') out = argv[++i] ?? out;
    else if (a.startsWith('--out=')) out = a.slice(6);
    else if (a === '--pin') pin = '0';
    else if (a.startsWith('--pin=')) pin = a.slice(6);
    else throw new Error(`unknown argument ${a} (use --quick, --out FILE, --pin[=CPU])`);
  }
  return { quick, out, pin };
}

/**
 * `--pin[=CPU]`: runs the whole benchmark (client and every server it spawns) on one
 * CPU with taskset. On a shared VM whose vCPUs change speed independently this keeps
 * both servers on the same CPU as the client, at the price of a context switch per
 * round trip; the key generation then competes with its own event loop for that CPU.
 */
function repinned(pin: string): boolean {
  if (process.env.TSWTPM_BENCH_PINNED === pin) return false;
  const r = spawnSync('taskset', ['-c', pin, process.execPath, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, TSWTPM_BENCH_PINNED: pin, [REMOVED_BY_PARENT]: envRemoved.join(',') },
  });
  process.exitCode = r.status ?? 1;
  return true;
}

const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

async function startAll(state: string, programs: readonly Program[], transport: 'tcp' | 'unix') {
  const out: Server[] = [];
  for (const program of [...programs, 'echo' as const]) {
    out.push(await startServer({ program, stateDir: copyState(state), transport }));
  }
  return out;
}

export async function runBench(quick: boolean): Promise<BenchResult> {
  const z = quick ? QUICK : FULL;
  const startupReps = quick ? 2 : 15;
  const nvIndices = 16;
  const swtpm = swtpmVersion();
  const programs: Program[] = swtpm ? ['tswtpm', 'swtpm'] : ['tswtpm'];
  if (!swtpm) log('swtpm is not installed: tswtpm only');
  const info = machine(swtpm);
  log(`preparing state (${nvIndices} NV indices) with ${programs[programs.length - 1]}`);
  const state = await prepareState(programs[programs.length - 1]!, nvIndices);
  const rows: Row[] = [];
  const servers: Server[] = [];
  try {
    // With the echo server (Node's floor) for the round-trip rows; without it for the rest.
    const tcpE: Pair = await startAll(state, programs, 'tcp');
    servers.push(...tcpE);
    const unixE: Pair = await startAll(state, programs, 'unix');
    servers.push(...unixE);
    const tcp = tcpE.filter((s) => s.program !== 'echo');
    const unix = unixE.filter((s) => s.program !== 'echo');
    log('data channel, TCP');
    rows.push(...(await dataRoundTrips(tcpE, z, 'TCP')));
    log('data channel, Unix');
    rows.push(...(await dataRoundTrips(unixE, z, 'Unix')));
    log('control channel');
    rows.push(await ctrlRoundTrip(tcpE, z, 'TCP'));
    rows.push(await ctrlRoundTrip(unixE, z, 'Unix'));
    log('state blobs');
    rows.push(...(await stateBlobs(tcp, z)));
    log('CreatePrimary RSA-2048');
    rows.push(await createPrimary(tcp, z));
    log('GET_CAPABILITY during RSA-3072');
    rows.push(...(await ctrlDuringKeygen(unix, z)));
    log('tcti-swtpm pattern');
    rows.push(await tctiPattern(tcpE, z));
    log('library client');
    rows.push(await libraryClient(tcp, z));
  } finally {
    for (const s of servers) await s.stop();
  }
  log('start-up and RSS');
  const entry = bundleFresh() ? 'bundle' : 'modules';
  if (entry !== info.tswtpmEntry)
    log('dist/ was rebuilt during the run: start-up used the modules');
  rows.splice(0, 0, ...startupRows(await measureStartup(state, programs, startupReps)));
  log('many TPMs in one process');
  rows.push(...(await instanceRows(state, programs, quick)));
  info.tswtpmEntry = bundleFresh() && entry === 'bundle' ? 'bundle' : 'modules';
  return {
    schema: 'tswtpm-bench/1',
    date: new Date().toISOString(),
    quick,
    machine: info,
    sizes: { ...z, startupReps, nvIndices },
    rows,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { quick, out, pin } = parseArgs(process.argv.slice(2));
  envRemoved = benchEnvironment();
  if (pin !== undefined && repinned(pin)) process.exit();
  const t0 = Date.now();
  const result = await runBench(quick);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  const m = result.machine;
  console.log(
    `tswtpm (${m.tswtpmEntry}${m.pinnedToCpu === null ? '' : `, all on CPU ${m.pinnedToCpu}`}) vs swtpm ${m.swtpm ?? '(not installed)'} — ${m.cpu}, ${m.cores} cores, node ${m.node}, load ${String(m.loadavg)}${quick ? ' — QUICK' : ''}\n`,
  );
  console.log(table(result.rows));
  const notes = [
    `- ${environmentNote(envRemoved)}`,
    '- Node floor: `node -e 0` (spawn to exit; RSS of an idle node) for start-up and RSS; a node:net echo server doing no TPM work (bench/echo-server.ts), same client, for round trips',
    ...result.rows.filter((r) => r.note).map((r) => `- ${r.label}: ${r.note}`),
  ];
  if (notes.length > 0) console.log(`\n${notes.join('\n')}`);
  console.log(`\n${out} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
