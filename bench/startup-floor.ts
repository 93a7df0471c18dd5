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
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
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

async function startMs(what: (typeof PROGRAMS)[Name], state: string): Promise<number> {
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
        : spawn(process.execPath, [TSWTPM_BIN, ...args], { stdio: 'ignore' });
  } else {
    child = spawn(process.execPath, [FLOOR, String(port), what], { stdio: 'ignore' });
  }
  while (!(await answered(port))) {
    if (child.exitCode !== null) throw new Error(`${what} exited during start-up`);
    await new Promise((r) => setTimeout(r, 1));
  }
  const ms = performance.now() - t0;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
  return ms;
}

async function main(reps: number): Promise<void> {
  const state = await prepareState('tswtpm', 16);
  const names = Object.keys(PROGRAMS) as Name[];
  const ms = new Map<string, number[]>([['node -e 0', []]]);
  for (const n of names) ms.set(n, []);
  for (let r = -1; r < reps; r++) {
    const floor = await nodeFloorMs();
    if (r >= 0) ms.get('node -e 0')!.push(floor);
    for (const n of r % 2 === 0 ? names : [...names].reverse()) {
      const x = await startMs(PROGRAMS[n], state);
      if (r >= 0) ms.get(n)!.push(x);
    }
  }
  const base = median(ms.get('node -e 0')!);
  console.log(`start to first GetRandom response, medians of ${reps} (min–max), ms:\n`);
  console.log('| process | ms | − node -e 0 |\n| --- | --- | --- |');
  for (const [n, xs] of ms) {
    const m = median(xs);
    const range = `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
    const d = n === 'node -e 0' ? '' : (m - base).toFixed(1);
    console.log(`| ${n} | ${m.toFixed(1)} (${range}) | ${d} |`);
  }
}

await main(Number(process.argv[2] ?? 21));
