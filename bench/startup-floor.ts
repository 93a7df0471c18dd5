/**
 * How close tswtpm's start is to the least any Node + koffi + libtpms server can do:
 * `node dist/bench/startup-floor.js [reps=21]`.
 *
 * Each repetition runs, in an order that flips every time: `node -e 0` (spawn to exit);
 * bench/startup-floor-server.cjs as a node:net server with a fixed answer, the same
 * with koffi loaded, and a libtpms server (a new TPM 2 manufactured in memory,
 * TPM2_Startup, one blocking libc accept/recv/send loop); `tswtpm socket` as
 * `npm run bench` starts it (state with 16 NV indices, seccomp on); Debian's
 * `swtpm socket`. Start = spawn to the first answered GetRandom, connect polled every
 * 1 ms. Prints medians (min-max) and each one's distance from `node -e 0`.
 *
 * A/B of builds: `node dist/bench/startup-floor.js REPS --ab BIN...` runs `node -e 0`,
 * this build's tswtpm, each other build's `bin/tswtpm.js` (e.g. a `git worktree` of an
 * older commit, built) and swtpm, without the three floor servers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { benchEnvironment, environmentNote } from './env.js';
import { median } from './report.js';
import { TSWTPM_BIN, copyState, freePort } from './servers.js';
import { nodeFloorMs } from './startup.js';
import { prepareState } from './state.js';

const FLOOR = fileURLToPath(new URL('../../bench/startup-floor-server.cjs', import.meta.url));
const GETRANDOM = Buffer.from('80010000000c0000017b0008', 'hex');

const PROGRAMS = {
  'node:net server, fixed answer': 'net',
  '+ koffi': 'koffi',
  'koffi + libtpms (new TPM, Startup), libc socket': 'tpm',
  tswtpm: 'tswtpm',
  'swtpm 0.7.1': 'swtpm',
} as const;
type Name = keyof typeof PROGRAMS;

/** One attempt: connect, send GetRandom, true once anything comes back. */
const answered = (port: number) =>
  new Promise<boolean>((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.on('error', () => resolve(false));
    c.on('connect', () => c.write(GETRANDOM));
    c.on('data', () => {
      c.destroy();
      resolve(true);
    });
  });

/**
 * CPU time (ms) every thread of `pid` has used so far (/proc/PID/task/TID/schedstat, ns):
 * less disturbed than the wall clock by what else the machine runs.
 */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // (a thread that just ended)
    }
  }
  return ns / 1e6;
}

/** CPU ms of a `node -e` that does nothing but report its own CPU time at exit. */
function nodeFloorCpuMs(): Promise<number> {
  const js =
    "process.on('exit',()=>{const u=process.cpuUsage();require('fs').writeSync(1,String(u.user+u.system))})";
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', js], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.once('error', reject);
    p.once('exit', () => resolve(Number(out) / 1000));
  });
}

/**
 * ms from spawn to the first answer, and the server's CPU ms by then; `bin` is the
 * tswtpm to start for 'tswtpm'.
 */
async function startMs(
  what: (typeof PROGRAMS)[Name],
  state: string,
  bin = TSWTPM_BIN,
): Promise<{ ms: number; cpu: number }> {
  const port = await freePort();
  let child: ChildProcess;
  const t0 = performance.now();
  if (what === 'tswtpm' || what === 'swtpm') {
    const args = [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${copyState(state)}`,
      '--server',
      `type=tcp,port=${port}`,
      '--ctrl',
      `type=tcp,port=${await freePort()}`,
      '--flags',
      'not-need-init,startup-clear',
    ];
    child =
      what === 'swtpm'
        ? spawn('swtpm', args, { stdio: 'ignore' })
        : spawn(process.execPath, [bin, ...args], { stdio: 'ignore' });
  } else {
    child = spawn(process.execPath, [FLOOR, String(port), what], { stdio: 'ignore' });
  }
  while (!(await answered(port))) {
    if (child.exitCode !== null) throw new Error(`${what} exited during start-up`);
    await new Promise((r) => setTimeout(r, 1));
  }
  const ms = performance.now() - t0;
  const cpu = cpuMs(child.pid!);
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
  return { ms, cpu };
}

/** What one row starts: a program of {@link PROGRAMS}, or tswtpm from another build. */
interface Entry {
  readonly name: string;
  readonly what: (typeof PROGRAMS)[Name];
  readonly bin?: string;
}

async function main(reps: number, others: readonly string[] | undefined): Promise<void> {
  const state = await prepareState('tswtpm', 16);
  const entries: Entry[] =
    others === undefined
      ? (Object.keys(PROGRAMS) as Name[]).map((n) => ({ name: n, what: PROGRAMS[n] }))
      : [
          { name: 'tswtpm (this build)', what: 'tswtpm' },
          ...others.map((bin) => ({ name: `tswtpm ${bin}`, what: 'tswtpm' as const, bin })),
          { name: 'swtpm 0.7.1', what: 'swtpm' },
        ];
  const ms = new Map<string, number[]>([['node -e 0', []]]);
  const cpu = new Map<string, number[]>([['node -e 0', []]]);
  for (const e of entries) {
    ms.set(e.name, []);
    cpu.set(e.name, []);
  }
  for (let r = -1; r < reps; r++) {
    const floor = await nodeFloorMs();
    const floorCpu = await nodeFloorCpuMs();
    if (r >= 0) {
      ms.get('node -e 0')!.push(floor);
      cpu.get('node -e 0')!.push(floorCpu);
    }
    for (const e of r % 2 === 0 ? entries : [...entries].reverse()) {
      const x = await startMs(e.what, state, e.bin);
      if (r >= 0) {
        ms.get(e.name)!.push(x.ms);
        cpu.get(e.name)!.push(x.cpu);
      }
    }
  }
  const base = median(ms.get('node -e 0')!);
  const cpuBase = median(cpu.get('node -e 0')!);
  console.log(`start to first GetRandom response, medians of ${reps} (min–max), ms:\n`);
  console.log('| process | ms | − node -e 0 | CPU ms | − node -e 0 |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const [n, xs] of ms) {
    const m = median(xs);
    const range = `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
    const d = n === 'node -e 0' ? '' : (m - base).toFixed(1);
    const c = median(cpu.get(n)!);
    const dc = n === 'node -e 0' ? '' : (c - cpuBase).toFixed(1);
    console.log(`| ${n} | ${m.toFixed(1)} (${range}) | ${d} | ${c.toFixed(1)} | ${dc} |`);
  }
  console.log(
    '\n(CPU: all threads until the answer, from /proc; `node -e 0`: its own process.cpuUsage() at exit)',
  );
}

const removed = benchEnvironment();
const ab = process.argv.indexOf('--ab');
await main(Number(process.argv[2] ?? 21), ab < 0 ? undefined : process.argv.slice(ab + 1));
console.log(`(${environmentNote(removed)})`);
