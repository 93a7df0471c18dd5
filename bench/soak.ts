/**
 * Bounded network soak (not CI): mixed valid and malformed requests on the control and
 * data channels of a `socket` server, over TCP and over Unix sockets, while connect
 * floods and half-open peers run at the same time. Run against tswtpm and Debian's
 * swtpm with the same command line; prints RSS and fd counts at start and end, the
 * p50/p99 of CMD_GET_CAPABILITY round trips inside a control session, and the ratios.
 *
 *   npm run build && node dist/bench/soak.js [--requests N] [--programs tswtpm,swtpm]
 *
 * N (default 1,000,000) is split evenly over the TCP and the Unix run of each program.
 * Both servers take one client per channel at a time, so flood and half-open peers
 * queue behind the main sessions and delay them; every request has a 5 s deadline and
 * a miss (no complete reply in time) is counted, not fatal; so is a refused connect
 * (a full listen backlog during a flood). docs/reliability.md keeps the figures.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { getRandom2, pcrRead2, tpmCommand } from '../src/protocol/tpm/commands.js';
import { type Addr, type Framer, RawConn, tpmFrame } from './raw.js';
import {
  type Program,
  type Server,
  rssKiB,
  startServer,
  swtpmVersion,
  tempDir,
} from './servers.js';

const u32 = (...xs: number[]) => {
  const b = Buffer.alloc(4 * xs.length);
  xs.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i));
  return b;
};

/** Control requests that leave the TPM as it is, with their success reply sizes. */
const CTRL_VALID: ReadonlyArray<[Buffer, number]> = [
  [u32(1), 8], // GET_CAPABILITY
  [u32(4), 8], // GET_TPMESTABLISHED
  [Buffer.concat([u32(5), Buffer.from([0])]), 4], // SET_LOCALITY 0
  [u32(15), 8], // GET_CONFIG
  [u32(17, 0), 16], // SET_BUFFERSIZE 0 (query)
];
/** Malformed but complete: each is answered with a 4-byte error at once. */
const CTRL_BAD: readonly Buffer[] = [
  u32(0x77), // unknown code
  u32(0), // code 0
  u32(0xffffffff),
  Buffer.concat([u32(5), Buffer.from([9])]), // SET_LOCALITY 9
  u32(3, 0), // SHUTDOWN with a body (exact size 0)
  u32(4, 1, 2), // GET_TPMESTABLISHED with a body
];
const GET_CAPABILITY = CTRL_VALID[0]![0];

const ctrlFramer =
  (okSize: number): Framer =>
  (b) =>
    b.length < 4 ? 4 : b.readUInt32BE(0) !== 0 ? 4 : okSize;

/** Read-only TPM commands, and malformed ones whose size field matches their length. */
const DATA_VALID: readonly Buffer[] = [getRandom2(16), getRandom2(32), pcrRead2(0)];
function dataBad(i: number): Buffer {
  switch (i % 5) {
    case 0:
      return tpmCommand(0x8001, 0x12345678, Buffer.from('junk')); // no such command
    case 1: {
      const c = getRandom2(16);
      c.writeUInt16BE(0x1234, 0); // bad tag
      return c;
    }
    case 2:
      return tpmCommand(0x8001, 0x17b); // GetRandom without its parameter
    case 3:
      return tpmCommand(0x8001, 0x17e, Buffer.alloc(40, 0xee)); // PCR_Read, garbage selection
    default:
      return tpmCommand(0x8002, 0x17b, Buffer.alloc(7, 0xff)); // sessions tag, no sessions
  }
}

interface Tally {
  requests: number;
  malformed: number;
  replies: number;
  misses: number;
  connectFails: number;
  capRtt: number[];
}

function request(c: RawConn, msg: Buffer, frame: Framer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      c.close();
      resolve(undefined);
    }, 5000);
    c.send(msg, frame, (err, rsp) => {
      clearTimeout(t);
      resolve(err ? undefined : rsp);
    });
  });
}

async function connect(addr: Addr): Promise<RawConn | undefined> {
  try {
    return await RawConn.connect(addr);
  } catch {
    return undefined;
  }
}

/** Sessions of up to 500 requests, 1 in 5 malformed, until `quota` is used up. */
async function mainLane(s: Server, channel: 'ctrl' | 'data', quota: number, t: Tally) {
  let sent = 0;
  while (sent < quota) {
    const c = await connect(channel === 'ctrl' ? s.ctrl : s.data);
    if (c === undefined) {
      t.connectFails++;
      await new Promise((r) => setTimeout(r, 10));
      continue;
    }
    for (let i = 0; i < 500 && sent < quota && !c.closed; i++, sent++) {
      const bad = sent % 5 === 4;
      let msg: Buffer;
      let frame: Framer;
      if (channel === 'ctrl') {
        const [v, size] = CTRL_VALID[sent % CTRL_VALID.length]!;
        msg = bad ? CTRL_BAD[sent % CTRL_BAD.length]! : v;
        frame = ctrlFramer(bad ? 4 : size);
      } else {
        msg = bad ? dataBad(sent) : DATA_VALID[sent % DATA_VALID.length]!;
        frame = tpmFrame;
      }
      t.requests++;
      if (bad) t.malformed++;
      const t0 = performance.now();
      const rsp = await request(c, msg, frame);
      if (rsp === undefined) t.misses++;
      else {
        t.replies++;
        if (msg === GET_CAPABILITY) t.capRtt.push(performance.now() - t0);
      }
    }
    c.close();
  }
}

/** Bursts of connections that close at once or after sending a few garbage bytes. */
async function floodLane(s: Server, stop: () => boolean, counts: { flood: number }) {
  while (!stop()) {
    const burst: Promise<void>[] = [];
    for (let i = 0; i < 32; i++) {
      const addr = i % 2 ? s.ctrl : s.data;
      burst.push(
        new Promise((resolve) => {
          const sock =
            'path' in addr ? net.connect(addr.path) : net.connect(addr.port, '127.0.0.1');
          sock.on('error', () => resolve());
          sock.on('close', () => resolve());
          sock.on('connect', () => {
            counts.flood++;
            if (i % 4 === 0) sock.end(Buffer.from([0xde, 0xad]));
            else sock.destroy();
          });
        }),
      );
    }
    await Promise.all(burst);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Peers that send part of a request, half-close, and wait (at most 1 s) for the server. */
async function halfOpenLane(s: Server, stop: () => boolean, counts: { halfOpen: number }) {
  const partial = [
    u32(1).subarray(0, 2),
    u32(7, 100),
    tpmCommand(0x8001, 0x17b, Buffer.alloc(2)).subarray(0, 6),
  ];
  for (let i = 0; !stop(); i++) {
    const addr = i % 2 ? s.ctrl : s.data;
    await new Promise<void>((resolve) => {
      const sock = 'path' in addr ? net.connect(addr.path) : net.connect(addr.port, '127.0.0.1');
      const t = setTimeout(() => sock.destroy(), 1000);
      sock.on('error', () => {});
      sock.on('close', () => {
        clearTimeout(t);
        resolve();
      });
      sock.on('data', () => {});
      sock.on('connect', () => {
        counts.halfOpen++;
        sock.end(partial[i % partial.length]!);
      });
    });
  }
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

interface Result {
  program: Program;
  transport: 'tcp' | 'unix';
  seconds: number;
  requests: number;
  malformed: number;
  replies: number;
  misses: number;
  connectFails: number;
  floodConns: number;
  halfOpenPeers: number;
  rssStartKiB: number;
  rssEndKiB: number;
  fdStart: number;
  fdEnd: number;
  fdMax: number;
  capP50Us: number;
  capP99Us: number;
  capSamples: number;
  aliveAfter: boolean;
}

async function soak(
  program: Program,
  transport: 'tcp' | 'unix',
  requests: number,
): Promise<Result> {
  const s = await startServer({ program, stateDir: tempDir('tswtpm-soak-'), transport });
  s.conn.close();
  await new Promise((r) => setTimeout(r, 200));
  const rssStartKiB = rssKiB(s.pid);
  const fdStart = fdCount(s.pid);
  let fdMax = fdStart;
  const t: Tally = {
    requests: 0,
    malformed: 0,
    replies: 0,
    misses: 0,
    connectFails: 0,
    capRtt: [],
  };
  const counts = { flood: 0, halfOpen: 0 };
  let done = false;
  const sampler = setInterval(() => {
    try {
      fdMax = Math.max(fdMax, fdCount(s.pid));
    } catch {}
  }, 100);
  const t0 = performance.now();
  const side = [floodLane(s, () => done, counts), halfOpenLane(s, () => done, counts)];
  await Promise.all([
    mainLane(s, 'ctrl', Math.floor(requests / 2), t),
    mainLane(s, 'data', Math.ceil(requests / 2), t),
  ]);
  done = true;
  await Promise.all(side);
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  await new Promise((r) => setTimeout(r, 1500));
  const rssEndKiB = rssKiB(s.pid);
  const fdEnd = fdCount(s.pid);
  const c = await connect(s.ctrl);
  const alive = c !== undefined && (await request(c, GET_CAPABILITY, ctrlFramer(8))) !== undefined;
  c?.close();
  await s.stop();
  return {
    program,
    transport,
    seconds: Math.round(seconds),
    requests: t.requests,
    malformed: t.malformed,
    replies: t.replies,
    misses: t.misses,
    connectFails: t.connectFails,
    floodConns: counts.flood,
    halfOpenPeers: counts.halfOpen,
    rssStartKiB,
    rssEndKiB,
    fdStart,
    fdEnd,
    fdMax,
    capP50Us: Math.round(pct(t.capRtt, 50) * 1000),
    capP99Us: Math.round(pct(t.capRtt, 99) * 1000),
    capSamples: t.capRtt.length,
    aliveAfter: alive,
  };
}

async function main() {
  const argv = process.argv.slice(2);
  const arg = (k: string) => {
    const i = argv.indexOf(k);
    return i < 0 ? undefined : argv[i + 1];
  };
  const total = Number(arg('--requests') ?? 1_000_000);
  let programs = (arg('--programs') ?? 'tswtpm,swtpm').split(',') as Program[];
  if (swtpmVersion() === undefined) programs = programs.filter((p) => p !== 'swtpm');
  const results: Result[] = [];
  for (const transport of ['tcp', 'unix'] as const) {
    for (const p of programs) {
      const r = await soak(p, transport, Math.floor(total / 2));
      console.log(JSON.stringify(r));
      results.push(r);
    }
  }
  const out = fileURLToPath(new URL('../../bench/results/soak-latest.json', import.meta.url));
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), results }, null, 2)}\n`);
  console.log(`written ${out}`);
}

await main();
