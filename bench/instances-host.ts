/**
 * Child process of bench/instances.ts: holds in-process TPMs and answers line
 * commands on stdin with one JSON line on stdout.
 *
 *   start <count> <stateDir>  starts <count> TPMs at once, each on a copy of stateDir
 *                             → {"ms": start-up time, "data": [data socket paths]}
 *   mem                       → /proc/self/status RSS figures in KiB + loaded copies
 *   loads <n>                 → ms for loading libtpms first, and per memfd copy
 *   exit
 */
import {
  cpSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { enginePoolStats, loadLibtpmsCopy } from '../src/engine/index.js';
import { loadLibtpms, requireKoffi } from '../src/engine/libtpms.js';
import { type InProcessTpm, startTpmInProcess } from '../src/index.js';

const tpms: InProcessTpm[] = [];
const dirs: string[] = [];

function memKiB(): Record<string, number> {
  const status = readFileSync('/proc/self/status', 'utf8');
  const out: Record<string, number> = {};
  for (const k of ['VmRSS', 'RssAnon', 'RssFile', 'RssShmem']) {
    out[k] = Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
  }
  // PSS: a page mapped N times counts 1/N each time (every copy maps the library
  // file's code: RSS counts those pages once per copy, PSS once).
  const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8');
  out.Pss = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? Number.NaN);
  // What the copies' memfds hold, mapped or not.
  let memfd = 0;
  for (const f of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${f}`).startsWith('/memfd:libtpms')) {
        memfd += statSync(`/proc/self/fd/${f}`).blocks * 512;
      }
    } catch {
      // (an fd closed meanwhile)
    }
  }
  out.MemfdKiB = memfd / 1024;
  return out;
}

async function start(count: number, stateDir: string) {
  const copies = Array.from({ length: count }, () => {
    const d = mkdtempSync(join(tmpdir(), 'tswtpm-bench-inst-'));
    cpSync(stateDir, d, { recursive: true });
    dirs.push(d);
    return d;
  });
  const t0 = performance.now();
  const started = await Promise.all(copies.map((d) => startTpmInProcess({ stateDir: d })));
  const ms = performance.now() - t0;
  tpms.push(...started);
  // The in-process clients are not used: the bench drives the sockets from its process.
  await Promise.all(started.map((t) => t.tpm.close()));
  return { ms, data: started.map((t) => t.dataPath) };
}

function loads(n: number) {
  const copies: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    loadLibtpmsCopy();
    copies.push(performance.now() - t0);
  }
  return { copyMs: copies };
}

async function handle(line: string): Promise<unknown> {
  const [cmd, a, b] = line.trim().split(' ');
  if (cmd === 'start') return start(Number(a), b!);
  if (cmd === 'mem') return { ...memKiB(), ...enginePoolStats() };
  if (cmd === 'loads') return loads(Number(a));
  if (cmd === 'exit') {
    await Promise.all(tpms.map((t) => t.close()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    process.exit(0);
  }
  throw new Error(`unknown command ${line}`);
}

// The first TPM's library load by name, as `tswtpm socket` pays it, without koffi's
// own start-up; `loads` then gives the same for memfd copies.
requireKoffi();
const t0 = performance.now();
loadLibtpms();
process.stdout.write(`${JSON.stringify({ firstLoadMs: performance.now() - t0 })}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  try {
    process.stdout.write(`${JSON.stringify(await handle(line))}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
  }
}
