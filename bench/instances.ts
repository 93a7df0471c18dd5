/**
 * Many TPMs in one process (issue 12) against one C swtpm process per TPM:
 * memory of one more TPM, aggregate GetRandom/s over 100 TPMs driven concurrently by
 * the same client, and (`--thousand`, too slow for the default run) 1,000 TPMs in one
 * process. Every TPM starts from the run's state (16 NV indices of 1 KiB).
 *
 *   node dist/bench/instances.js [--quick] [--thousand]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as T from '../src/protocol/tpm/commands.js';
import { RawConn } from './raw.js';
import { type Row, row, table } from './report.js';
import {
  type Program,
  type Server,
  copyState,
  rssKiB,
  startServer,
  swtpmVersion,
} from './servers.js';
import { prepareState } from './state.js';

const HOST = fileURLToPath(new URL('./instances-host.js', import.meta.url));
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

/** The in-process host child, driven line by line. */
class Host {
  readonly proc: ChildProcess;
  readonly #lines: AsyncIterator<string>;
  constructor() {
    this.proc = spawn(process.execPath, [HOST], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#lines = createInterface({ input: this.proc.stdout! })[Symbol.asyncIterator]();
  }
  async next<T>(): Promise<T> {
    const r = await this.#lines.next();
    if (r.done) throw new Error('the instances host exited');
    const v = JSON.parse(r.value) as T & { error?: string };
    if (v.error !== undefined) throw new Error(v.error);
    return v;
  }
  ask<T>(line: string): Promise<T> {
    this.proc.stdin!.write(`${line}\n`);
    return this.next<T>();
  }
  async stop(): Promise<void> {
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.proc.stdin!.write('exit\n');
    await gone;
  }
}

interface Mem {
  VmRSS: number;
  RssAnon: number;
  RssFile: number;
  RssShmem: number;
  Pss: number;
  MemfdKiB: number;
}

/** One GetRandom(16) and one PCR_Extend on every connection; rejects on a failed answer. */
async function answerAll(conns: readonly RawConn[]): Promise<void> {
  const digest = Buffer.alloc(32, 7);
  await Promise.all(
    conns.map(async (c) => {
      for (const cmd of [T.getRandom2(16), T.pcrExtend2(16, digest)]) {
        const { rc } = T.parseResponse(await c.request(cmd));
        if (rc !== 0) throw new Error(`rc 0x${rc.toString(16)}`);
      }
    }),
  );
}

const connectAll = (paths: readonly string[]) =>
  Promise.all(paths.map((path) => RawConn.connect({ path })));

/**
 * KiB of one more TPM in one process: RSS growth, and the memory it really takes: PSS
 * growth (shared library pages counted once) plus memfd pages that nothing maps.
 */
async function memoryPerTpm(state: string, extra: number) {
  const host = new Host();
  const { firstLoadMs } = await host.next<{ firstLoadMs: number }>();
  try {
    const first = await host.ask<{ data: string[] }>(`start 1 ${state}`);
    const c1 = await connectAll(first.data);
    await answerAll(c1);
    const m1 = await host.ask<Mem>('mem');
    const more = await host.ask<{ data: string[] }>(`start ${extra} ${state}`);
    const c2 = await connectAll(more.data);
    await answerAll(c2);
    const m2 = await host.ask<Mem>('mem');
    const { copyMs } = await host.ask<{ copyMs: number[] }>('loads 5');
    for (const c of [...c1, ...c2]) c.close();
    const rss = (m2.VmRSS - m1.VmRSS) / extra;
    const pss = (m2.Pss - m1.Pss) / extra;
    // A memfd's pages that are mapped are in PSS already (RssShmem counts them).
    const memfd = (m2.MemfdKiB - m1.MemfdKiB) / extra;
    const unmapped = Math.max(0, memfd - (m2.RssShmem - m1.RssShmem) / extra);
    return { rss, withMemfd: pss + unmapped, memfd, firstLoadMs, copyMs };
  } finally {
    await host.stop();
  }
}

/** GetRandom(16) per second over all connections, each with one command in flight. */
async function aggregateRate(conns: readonly RawConn[], perConn: number): Promise<number> {
  const cmd = T.getRandom2(16);
  const t0 = performance.now();
  await Promise.all(
    conns.map(async (c) => {
      for (let i = 0; i < perConn; i++) await c.request(cmd);
    }),
  );
  return (conns.length * perConn) / ((performance.now() - t0) / 1000);
}

async function startSwtpms(state: string, n: number): Promise<Server[]> {
  const out: Server[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await startServer({ program: 'swtpm', stateDir: copyState(state), transport: 'unix' }),
    );
  }
  return out;
}

/** Rows for bench/run.ts: memory per extra TPM and aggregate throughput of 100 TPMs. */
export async function instanceRows(
  state: string,
  programs: readonly Program[],
  quick: boolean,
): Promise<Row[]> {
  const reps = quick ? 1 : 3;
  const extra = 16;
  const n = quick ? 20 : 100;
  const perConn = quick ? 50 : 300;
  const withSwtpm = programs.includes('swtpm');
  const rss: number[] = [];
  const total: number[] = [];
  const memfdKiB: number[] = [];
  const copyMs: number[] = [];
  const firstMs: number[] = [];
  const swRss: number[] = [];
  for (let r = 0; r < reps; r++) {
    log(`memory of one more TPM (${extra} extra in one process), rep ${r + 1}`);
    const m = await memoryPerTpm(state, extra);
    rss.push(m.rss / 1024);
    total.push(m.withMemfd / 1024);
    memfdKiB.push(m.memfd);
    copyMs.push(...m.copyMs);
    firstMs.push(m.firstLoadMs);
    if (withSwtpm) {
      const [s] = await startSwtpms(state, 1);
      await answerAll([s!.conn]);
      swRss.push(rssKiB(s!.pid) / 1024);
      await s!.stop();
    }
  }
  const rows: Row[] = [
    row('instances.rss', 'RSS of one more TPM (16 NV × 1 KiB)', 'MiB', rss, swRss, {
      target: { kind: 'value-max', limit: 3, text: '<= 3 MiB' },
      note: 'tswtpm: RSS growth per extra in-process TPM; swtpm: one whole process',
    }),
    row('instances.mem', 'memory of one more TPM (PSS + unmapped memfd)', 'MiB', total, swRss, {
      note: `PSS counts the library file's code and constants, which every copy maps, once; a copy's memfd keeps ${median(memfdKiB).toFixed(0)} KiB (its writable segment); loading libtpms took ${median(firstMs).toFixed(1)} ms by name (1st TPM, libcrypto included), ${median(copyMs).toFixed(1)} ms per memfd copy`,
    }),
  ];
  log(`aggregate GetRandom/s over ${n} TPMs`);
  const ours: number[] = [];
  const theirs: number[] = [];
  const host = new Host();
  await host.next();
  const swtpms = withSwtpm ? await startSwtpms(state, n) : [];
  try {
    const { data } = await host.ask<{ data: string[] }>(`start ${n} ${state}`);
    const conns = await connectAll(data);
    const swConns = swtpms.map((s) => s.conn);
    // As every other case (docs/performance.md, "Method"): an untimed warm-up first
    // (tswtpm's data path must be JIT-compiled; the host's TPMs have answered two
    // commands each so far), then repetitions whose order flips every time.
    await aggregateRate(conns, perConn);
    if (withSwtpm) await aggregateRate(swConns, perConn);
    for (let r = 0; r < reps; r++) {
      const timeOurs = async () => ours.push(await aggregateRate(conns, perConn));
      const timeTheirs = async () => {
        if (withSwtpm) theirs.push(await aggregateRate(swConns, perConn));
      };
      for (const run of r % 2 === 0 ? [timeOurs, timeTheirs] : [timeTheirs, timeOurs]) await run();
    }
    for (const c of conns) c.close();
  } finally {
    await host.stop();
    for (const s of swtpms) await s.stop();
  }
  rows.push(
    row('instances.rate', `GetRandom/s, ${n} TPMs at once (Unix)`, 'per-s', ours, theirs, {
      target: { kind: 'ratio-min', limit: 1.0, text: 'ratio ≥ 1.0' },
      note: 'tswtpm: one process; swtpm: one process per TPM; same client',
    }),
  );
  return rows;
}

function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  return a.length === 0 ? Number.NaN : a[a.length >> 1]!;
}

/** 1,000 TPMs in one process: time until every one answered, and RSS. */
async function thousand(state: string): Promise<void> {
  const host = new Host();
  await host.next();
  try {
    const t0 = performance.now();
    const { ms, data } = await host.ask<{ ms: number; data: string[] }>(`start 1000 ${state}`);
    const conns = await connectAll(data);
    await answerAll(conns);
    const ready = performance.now() - t0;
    const m = await host.ask<Mem & { held: number }>('mem');
    console.log(
      `1000 TPMs in one process: started in ${(ms / 1000).toFixed(1)} s, all answered GetRandom and PCR_Extend after ${(ready / 1000).toFixed(1)} s; RSS ${(m.VmRSS / 1024).toFixed(0)} MiB (anon ${(m.RssAnon / 1024).toFixed(0)}, shmem ${(m.RssShmem / 1024).toFixed(0)}), PSS ${(m.Pss / 1024).toFixed(0)} MiB, memfds ${(m.MemfdKiB / 1024).toFixed(0)} MiB, ${m.held} engines`,
    );
    for (const c of conns) c.close();
  } finally {
    await host.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const programs: Program[] = swtpmVersion() ? ['tswtpm', 'swtpm'] : ['tswtpm'];
  const state = await prepareState(programs[programs.length - 1]!, 16);
  if (args.includes('--thousand')) await thousand(state);
  else {
    const rows = await instanceRows(state, programs, args.includes('--quick'));
    console.log(table(rows));
    for (const r of rows) if (r.note) console.log(`- ${r.label}: ${r.note}`);
  }
}
