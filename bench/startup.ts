/**
 * Start-to-first-response with existing state (spawn, connect polled every 1 ms,
 * the first TPM2_GetRandom answered) and RSS after that first command, for both
 * servers, with Node's own floor alongside: `node -e 0` from spawn to exit, and the
 * RSS of a Node process that has done nothing yet.
 *
 * Run alone: `node dist/bench/startup.js [reps]`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Row, row } from './report.js';
import { type Program, copyState, rssKiB, startServer } from './servers.js';

export interface StartupSamples {
  readonly startMs: Record<Program | 'node', number[]>;
  readonly rssMiB: Record<Program | 'node', number[]>;
}

const empty = (): Record<Program | 'node', number[]> => ({
  node: [],
  tswtpm: [],
  swtpm: [],
  echo: [],
});

/** ms from spawn to exit of `node -e 0`. */
export function nodeFloorMs(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    p.once('error', reject);
    p.once('exit', () => resolve(performance.now() - t0));
  });
}

/** RSS in MiB of a Node process that has started and runs nothing (read from /proc). */
export function nodeFloorRssMiB(): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      ['-e', 'process.stdout.write("up");setInterval(()=>{},1e6)'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    p.once('error', reject);
    p.stdout.once('data', () => {
      try {
        resolve(rssKiB(p.pid!) / 1024);
      } catch (e) {
        reject(e);
      } finally {
        p.kill('SIGKILL');
      }
    });
  });
}

/** `reps` alternating rounds of node -e 0, tswtpm and swtpm (when present) on copies of `stateDir`. */
export async function measureStartup(
  stateDir: string,
  programs: readonly Program[],
  reps: number,
): Promise<StartupSamples> {
  const startMs = empty();
  const rssMiB = empty();
  const dirs = new Map(programs.map((p) => [p, copyState(stateDir)]));
  // One untimed start each: page cache, Node's compile cache of our modules.
  for (const p of programs)
    await (await startServer({ program: p, stateDir: dirs.get(p)!, transport: 'tcp' })).stop();
  await nodeFloorMs();
  for (let r = 0; r < reps; r++) {
    const order = r % 2 === 0 ? programs : [...programs].reverse();
    startMs.node.push(await nodeFloorMs());
    rssMiB.node.push(await nodeFloorRssMiB());
    for (const p of order) {
      const s = await startServer({ program: p, stateDir: dirs.get(p)!, transport: 'tcp' });
      startMs[p].push(s.startMs);
      rssMiB[p].push(rssKiB(s.pid) / 1024);
      await s.stop();
    }
  }
  return { startMs, rssMiB };
}

export function startupRows(x: StartupSamples): Row[] {
  return [
    row(
      'startup.first-response',
      'start to first GetRandom response, existing state',
      'ms',
      x.startMs.tswtpm,
      x.startMs.swtpm,
      {
        floor: x.startMs.node,
        target: { kind: 'above-floor-max', limit: 25, text: '≤ node -e 0 + 25 ms' },
      },
    ),
    row('startup.rss', 'RSS after the first command', 'MiB', x.rssMiB.tswtpm, x.rssMiB.swtpm, {
      floor: x.rssMiB.node,
      target: { kind: 'floor-ratio-max', limit: 1.3, text: '≤ 1.3 × node -e 0' },
    }),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { prepareState } = await import('./state.js');
  const { table } = await import('./report.js');
  const { benchEnvironment, environmentNote } = await import('./env.js');
  const removed = benchEnvironment();
  const { swtpmVersion } = await import('./servers.js');
  const reps = Number(process.argv[2] ?? 7);
  const programs: Program[] = swtpmVersion() ? ['tswtpm', 'swtpm'] : ['tswtpm'];
  const state = await prepareState(programs[programs.length - 1]!, 4);
  console.log(table(startupRows(await measureStartup(state, programs, reps))));
  console.log(`\n(${environmentNote(removed)})`);
}
