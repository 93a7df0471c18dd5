/**
 * Start-to-first-response and RSS, measured the same way for three processes:
 * `tswtpm socket --tpm2`, Debian's `swtpm socket --tpm2` (both on a copy of one existing
 * TPM 2 state, `--flags not-need-init,startup-clear`), and a floor: a bare Node process
 * that opens a TCP server and answers one request with a fixed 28-byte response.
 *
 * Start-to-first-response = spawn() until the answer to TPM2_GetRandom(16) is in, the
 * data port polled with connect() every 1 ms. RSS = VmRSS from /proc/PID/status right
 * after that answer. Median (min-max) of N runs, the programs alternating.
 *
 * `node dist/bench/startup-first-response.js [runs=7]` (issue 2's note; bench/startup.ts
 * is the full benchmark's version of the same figures with `node -e 0` as floor).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchEnvironment, environmentNote } from './env.js';

const BIN = fileURLToPath(new URL('../../bin/tswtpm.js', import.meta.url));
const GET_RANDOM_16 = Buffer.from('80010000000c0000017b0010', 'hex');
const FLOOR_JS =
  "const r=Buffer.alloc(28);r.writeUInt16BE(0x8001,0);r.writeUInt32BE(28,2);require('net')" +
  ".createServer(s=>s.on('data',()=>s.write(r))).listen(+process.argv[1],'127.0.0.1')";

type Name = 'tswtpm' | 'swtpm' | 'node floor';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return typeof a === 'object' && a !== null ? a.port : 0;
}

function tpmArgs(dir: string, port: number): string[] {
  return [
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--server',
    `type=tcp,port=${port}`,
    '--flags',
    'not-need-init,startup-clear',
  ];
}

function spawnOne(name: Name, dir: string, port: number): ChildProcess {
  const opts = { stdio: 'ignore' as const };
  if (name === 'tswtpm') return spawn(process.execPath, [BIN, ...tpmArgs(dir, port)], opts);
  if (name === 'swtpm') return spawn('swtpm', tpmArgs(dir, port), opts);
  return spawn(process.execPath, ['-e', FLOOR_JS, String(port)], opts);
}

/** Connects (retrying every 1 ms), sends GetRandom(16), resolves on the full answer. */
function firstResponse(port: number, deadline: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = new Socket();
      let got = 0;
      s.once('error', () => {
        s.destroy();
        if (performance.now() > deadline) reject(new Error('no response'));
        else setTimeout(attempt, 1);
      });
      s.connect(port, '127.0.0.1', () => s.write(GET_RANDOM_16));
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= 10 && got >= d.readUInt32BE(2)) {
          s.destroy();
          resolve();
        }
      });
    };
    attempt();
  });
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? Number.NaN : Number(m[1]) / 1024;
}

async function once(name: Name, state: string): Promise<{ ms: number; rss: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tswtpm-startup-'));
  cpSync(state, dir, { recursive: true });
  const port = await freePort();
  const t0 = performance.now();
  const p = spawnOne(name, dir, port);
  try {
    await firstResponse(port, t0 + 20000);
    const ms = performance.now() - t0;
    return { ms, rss: rssMiB(p.pid!) };
  } finally {
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A TPM 2 state directory made by tswtpm (manufactured, started, shut down). */
async function makeState(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'tswtpm-startup-state-'));
  const port = await freePort();
  const p = spawnOne('tswtpm', dir, port);
  await firstResponse(port, performance.now() + 20000);
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await gone;
  return dir;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
};
const fmt = (xs: number[], digits: number) =>
  `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 7);
  const haveSwtpm = spawnSync('swtpm', ['--version']).status === 0;
  const names: Name[] = haveSwtpm ? ['tswtpm', 'swtpm', 'node floor'] : ['tswtpm', 'node floor'];
  const state = await makeState();
  const ms = new Map<Name, number[]>(names.map((n) => [n, []]));
  const rss = new Map<Name, number[]>(names.map((n) => [n, []]));
  try {
    for (const n of names) await once(n, state); // warm-up: page cache, compile cache
    for (let r = 0; r < runs; r++) {
      for (const n of r % 2 === 0 ? names : [...names].reverse()) {
        const x = await once(n, state);
        ms.get(n)!.push(x.ms);
        rss.get(n)!.push(x.rss);
      }
    }
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
  const lines = [
    `| process (median of ${runs}, min-max) | start to first GetRandom response (ms) | RSS after it (MiB) |`,
    '| --- | --- | --- |',
    ...names.map((n) => `| ${n} | ${fmt(ms.get(n)!, 1)} | ${fmt(rss.get(n)!, 1)} |`),
  ];
  console.log(lines.join('\n'));
}

const removed = benchEnvironment();
await main();
console.log(`(${environmentNote(removed)})`);
