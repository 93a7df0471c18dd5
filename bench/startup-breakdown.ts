/**
 * Where a tswtpm start-up goes: `node dist/bench/startup-breakdown.js [reps=15]`.
 *
 * Each repetition runs, in an order that flips every time: `node -e 0` (spawn to exit),
 * `tswtpm socket` as `npm run bench` starts it, the same with bench/startup-marks.cjs
 * preloaded (it prints the steps the server publishes on `tswtpm:startup`), and
 * Debian's `swtpm socket`. All on copies of one TPM 2 state with 16 NV indices,
 * `--flags not-need-init,startup-clear`, seccomp on (the default); start = spawn to the
 * first answered GetRandom, connect polled every 1 ms. Prints the medians (min-max)
 * and, per step, the median time since spawn and since the previous step.
 */
import { fileURLToPath } from 'node:url';
import { STARTUP_CHANNEL, type StartupMessage } from '../src/cli/server/startup-trace.js';
import { benchEnvironment, environmentNote } from './env.js';
import { median, stat } from './report.js';
import { type Program, copyState, startServer, swtpmVersion } from './servers.js';
import { nodeFloorMs } from './startup.js';

const MARKS = fileURLToPath(new URL('../../bench/startup-marks.cjs', import.meta.url));
const PREFIX = 'tswtpm-startup ';

/** Steps in the order of a start (bench/startup-marks.cjs adds `node`). */
const STEPS = [
  'node',
  'main',
  'options',
  'koffi',
  'sandbox',
  'engine',
  'state',
  'listening',
  'tpm-started',
  'startup-sent',
  'seccomp',
  'ready',
] as const;

const WHAT: Record<(typeof STEPS)[number] | 'response', string> = {
  node: 'Node started, preload runs (-r)',
  main: 'bin/tswtpm.js and the CLI bundle loaded',
  options: 'command line parsed',
  koffi: 'koffi loaded',
  sandbox: 'libseccomp bound',
  engine: 'libtpms + libcrypto dlopen, declarations',
  state: 'state dir opened and locked, device built',
  listening: 'data and control channels listen',
  'tpm-started': 'TPMLIB_MainInit (state loaded)',
  'startup-sent': 'TPM2_Startup(CLEAR) answered',
  seccomp: 'thread pool started, seccomp filter installed',
  ready: 'ready',
  response: 'first GetRandom answered (client side)',
};

interface Sample {
  /** ms since spawn, per step */
  readonly steps: Map<string, number>;
  /** CPU ms of the process so far, per step */
  readonly cpu: Map<string, number>;
  readonly response: number;
}

type Line = (StartupMessage | { step: 'node'; at: number }) & { cpu: number };

function parseSample(stderr: string, spawnedAt: number, response: number): Sample {
  const steps = new Map<string, number>();
  const cpu = new Map<string, number>();
  for (const l of stderr.split('\n')) {
    if (!l.startsWith(PREFIX)) continue;
    const m = JSON.parse(l.slice(PREFIX.length)) as Line;
    if (steps.has(m.step)) continue;
    steps.set(m.step, m.at - spawnedAt);
    cpu.set(m.step, m.cpu);
  }
  return { steps, cpu, response };
}

const fmt = (xs: readonly number[]) => {
  const s = stat(xs);
  return s === undefined ? '' : `${s.median.toFixed(1)} (${s.min.toFixed(1)}–${s.max.toFixed(1)})`;
};

async function main(): Promise<void> {
  const reps = Number(process.argv[2] ?? 15);
  const { prepareState } = await import('./state.js');
  const programs: Program[] = swtpmVersion() ? ['tswtpm', 'swtpm'] : ['tswtpm'];
  const state = await prepareState(programs[programs.length - 1]!, 16);
  const dirs = { tswtpm: copyState(state), marked: copyState(state), swtpm: copyState(state) };
  const kinds = ['node', 'tswtpm', 'marked', ...(programs.includes('swtpm') ? ['swtpm'] : [])];
  const ms: Record<string, number[]> = { node: [], tswtpm: [], marked: [], swtpm: [] };
  const samples: Sample[] = [];
  const once = async (k: string, timed: boolean) => {
    if (k === 'node') {
      const x = await nodeFloorMs();
      if (timed) ms.node!.push(x);
      return;
    }
    const marked = k === 'marked';
    const s = await startServer({
      program: marked ? 'tswtpm' : (k as Program),
      stateDir: dirs[k as keyof typeof dirs],
      transport: 'tcp',
      ...(marked ? { nodeArgs: ['-r', MARKS] } : {}),
    });
    await s.stop();
    if (!timed) return;
    ms[k]!.push(s.startMs);
    if (marked) samples.push(parseSample(s.stderr(), s.spawnedAt, s.startMs));
  };
  for (const k of kinds) await once(k, false); // warm-up: page cache
  for (let r = 0; r < reps; r++) {
    for (const k of r % 2 === 0 ? kinds : [...kinds].reverse()) await once(k, true);
  }
  const floor = median(ms.node!);
  const t = median(ms.tswtpm!);
  console.log(`start to first GetRandom response, medians of ${reps} (min–max), ms:\n`);
  console.log('| process | ms | − node -e 0 |');
  console.log('| --- | --- | --- |');
  console.log(`| node -e 0 | ${fmt(ms.node!)} | |`);
  console.log(`| tswtpm | ${fmt(ms.tswtpm!)} | ${(t - floor).toFixed(1)} |`);
  console.log(
    `| tswtpm, steps traced | ${fmt(ms.marked!)} | ${(median(ms.marked!) - floor).toFixed(1)} |`,
  );
  if (ms.swtpm!.length > 0) {
    const s = median(ms.swtpm!);
    console.log(`| swtpm 0.7.1 | ${fmt(ms.swtpm!)} | (tswtpm / swtpm = ${(t / s).toFixed(2)}) |`);
  }
  console.log('\n| step (traced run) | since spawn | since the step before | CPU ms in the step |');
  console.log('| --- | --- | --- | --- |');
  let prev: { at: number[]; cpu: number[] } | undefined;
  for (const step of [...STEPS, 'response' as const]) {
    const at = samples.map((x) => (step === 'response' ? x.response : x.steps.get(step)));
    if (at.some((x) => x === undefined)) continue;
    const cur = { at: at as number[], cpu: samples.map((x) => x.cpu.get(step) ?? Number.NaN) };
    const delta = prev === undefined ? [] : cur.at.map((x, i) => x - prev!.at[i]!);
    const cpu =
      prev === undefined
        ? cur.cpu
        : cur.cpu.map((x, i) => x - prev!.cpu[i]!).filter((x) => !Number.isNaN(x));
    console.log(`| ${WHAT[step]} | ${fmt(cur.at)} | ${fmt(delta)} | ${fmt(cpu)} |`);
    prev = cur;
  }
  console.log(
    `\n(${STARTUP_CHANNEL} steps; the preload itself adds a CommonJS module to the start)`,
  );
}

const removed = benchEnvironment();
await main();
console.log(`(${environmentNote(removed)})`);
