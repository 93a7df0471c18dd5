/**
 * The side-by-side measurements on running servers. Each case warms both servers up,
 * then runs its repetitions alternating between them (the order flips every
 * repetition); one repetition gives one value per server (e.g. the median of its n
 * round trips).
 */
import { TpmClient } from '../src/client/tpm.js';
import * as T from '../src/protocol/tpm/commands.js';
import { responseCode } from '../src/protocol/tpm/header.js';
import {
  type Addr,
  CTRL,
  type Framer,
  RawConn,
  blobFrame,
  ctrlFrame,
  ctrlResult,
  setPermanentBlob,
  timeLoop,
  tpmFrame,
} from './raw.js';
import { type Row, type Target, median, row } from './report.js';
import type { Program, Server } from './servers.js';

export interface Sizes {
  /** Untimed round trips per server before a latency case. */
  readonly warmup: number;
  /** Round trips per repetition for the µs-scale cases. */
  readonly n: number;
  readonly reps: number;
  /** Round trips per repetition of the new-connection (tcti) case. */
  readonly nConnect: number;
  /** State blob get/set per repetition. */
  readonly nBlob: number;
  /** CreatePrimary RSA-2048 per repetition, and repetitions. */
  readonly nKey: number;
  readonly repsKey: number;
  /** GET_CAPABILITY-during-RSA-3072 repetitions. */
  readonly repsLong: number;
}

/**
 * tswtpm first; swtpm may be missing (then only tswtpm's figures are reported); the
 * echo server (Node's floor), where present, is measured like the others.
 */
export type Pair = readonly Server[];

const RATIO_1: Target = { kind: 'ratio-max', limit: 1.0, text: 'ratio ≤ 1.0' };

type Figures = Record<string, number>;
type Samples = Record<Program, Record<string, number[]>>;

/** Runs `measure` `reps` times per server, alternating; collects each named figure. */
async function alternate(
  servers: Pair,
  reps: number,
  measure: (s: Server) => Promise<Figures>,
): Promise<Samples> {
  const out: Samples = { tswtpm: {}, swtpm: {}, echo: {} };
  for (let r = 0; r < reps; r++) {
    const order = r % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) {
      const f = await measure(s);
      for (const [k, v] of Object.entries(f)) {
        const list = out[s.program][k] ?? [];
        list.push(v);
        out[s.program][k] = list;
      }
    }
  }
  return out;
}

const get = (s: Samples, p: Program, k: string): number[] => s[p][k] ?? [];

/** Node's floor for a row, when the echo server took part. */
function floorOf(s: Samples, k: string): { floor?: number[] } {
  const f = s.echo[k];
  return f === undefined ? {} : { floor: f };
}

const isOk = (rsp: Buffer) => responseCode(rsp) === 0;
const ctrlOk = (rsp: Buffer) => ctrlResult(rsp) === 0;

async function dataConn(s: Server): Promise<RawConn> {
  if (s.conn.closed) s.conn = await RawConn.connect(s.data);
  return s.conn;
}

/** Persistent data connection: GetRandom(16) and PCR_Extend round trips. */
export async function dataRoundTrips(pair: Pair, z: Sizes, transport: string): Promise<Row[]> {
  const getRandom = T.getRandom2(16);
  const extend = T.pcrExtend2(16, Buffer.alloc(32, 0xa5));
  for (const s of pair) {
    const c = await dataConn(s);
    await timeLoop(c, getRandom, tpmFrame, z.warmup, isOk);
    await timeLoop(c, extend, tpmFrame, z.warmup, isOk);
  }
  const res = await alternate(pair, z.reps, async (s) => {
    const c = await dataConn(s);
    return {
      getRandom: median(await timeLoop(c, getRandom, tpmFrame, z.n, isOk)),
      extend: median(await timeLoop(c, extend, tpmFrame, z.n, isOk)),
    };
  });
  const id = transport.toLowerCase();
  return [
    row(
      `data.${id}.getrandom`,
      `TPM2_GetRandom(16), ${transport}, persistent`,
      'us',
      get(res, 'tswtpm', 'getRandom'),
      get(res, 'swtpm', 'getRandom'),
      { target: RATIO_1, ...floorOf(res, 'getRandom') },
    ),
    row(
      `data.${id}.pcrextend`,
      `TPM2_PCR_Extend, ${transport}, persistent`,
      'us',
      get(res, 'tswtpm', 'extend'),
      get(res, 'swtpm', 'extend'),
      { target: RATIO_1, ...floorOf(res, 'extend') },
    ),
  ];
}

/** The same GetRandom through our library client (TpmClient), to show its own cost. */
export async function libraryClient(pair: Pair, z: Sizes): Promise<Row> {
  const cmd = T.getRandom2(16);
  const clients = new Map<Server, TpmClient>();
  const loop = async (s: Server, n: number) => {
    const c = clients.get(s)!;
    const t = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await c.transmit(cmd);
      t[i] = (performance.now() - t0) * 1000;
    }
    return median(t);
  };
  for (const s of pair) {
    // One data client at a time: the raw connection yields to the library's.
    s.conn.close();
    clients.set(s, new TpmClient(s.data as { port: number }));
    await loop(s, z.warmup);
  }
  const res = await alternate(pair, z.reps, async (s) => ({ t: await loop(s, z.n) }));
  for (const c of clients.values()) await c.close();
  return row(
    'client.library.getrandom',
    'GetRandom(16), TCP, via TpmClient (library)',
    'us',
    get(res, 'tswtpm', 't'),
    get(res, 'swtpm', 't'),
    { note: 'informational: the library client instead of the raw client' },
  );
}

/** One tcti-swtpm transmit: SET_LOCALITY on a new control connection, then the command on a new data connection. */
function tctiOnce(s: Server, cmd: Buffer): Promise<void> {
  const once = async (addr: Addr, msg: Buffer, frame: Framer, ok: (b: Buffer) => boolean) => {
    const c = await RawConn.connect(addr);
    try {
      const rsp = await c.request(msg, frame);
      if (!ok(rsp)) throw new Error(`unexpected response ${rsp.toString('hex')}`);
    } finally {
      c.close();
    }
  };
  return once(s.ctrl, CTRL.setLocality0, ctrlFrame(4), ctrlOk).then(() =>
    once(s.data, cmd, tpmFrame, isOk),
  );
}

export async function tctiPattern(pair: Pair, z: Sizes): Promise<Row> {
  const cmd = T.getRandom2(16);
  const loop = async (s: Server, n: number) => {
    const t = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await tctiOnce(s, cmd);
      t[i] = (performance.now() - t0) * 1000;
    }
    return median(t);
  };
  for (const s of pair) {
    s.conn.close();
    await loop(s, Math.min(z.warmup, 200));
  }
  const res = await alternate(pair, z.reps, async (s) => ({ t: await loop(s, z.nConnect) }));
  return row(
    'tcti.tcp.getrandom',
    'tcti-swtpm pattern: SET_LOCALITY + GetRandom(16), new connections, TCP',
    'us',
    get(res, 'tswtpm', 't'),
    get(res, 'swtpm', 't'),
    { target: RATIO_1, ...floorOf(res, 't') },
  );
}

/** GET_CAPABILITY round trips on a persistent control connection. */
export async function ctrlRoundTrip(pair: Pair, z: Sizes, transport: string): Promise<Row> {
  const conns = new Map<Server, RawConn>();
  const frame = ctrlFrame(8);
  for (const s of pair) {
    const c = await RawConn.connect(s.ctrl);
    conns.set(s, c);
    await timeLoop(c, CTRL.getCapability, frame, z.warmup, ctrlOk);
  }
  const res = await alternate(pair, z.reps, async (s) => ({
    t: median(await timeLoop(conns.get(s)!, CTRL.getCapability, frame, z.n, ctrlOk)),
  }));
  for (const c of conns.values()) c.close();
  return row(
    `ctrl.${transport.toLowerCase()}.getcapability`,
    `CMD_GET_CAPABILITY, ${transport}, persistent`,
    'us',
    get(res, 'tswtpm', 't'),
    get(res, 'swtpm', 't'),
    { target: RATIO_1, ...floorOf(res, 't') },
  );
}

/**
 * GET_STATEBLOB of the permanent state while running, then (after CMD_STOP)
 * SET_STATEBLOB of that blob, then CMD_INIT + TPM2_Startup to run on.
 */
export async function stateBlobs(pair: Pair, z: Sizes): Promise<Row[]> {
  const conns = new Map<Server, RawConn>();
  const blobs = new Map<Server, Buffer>();
  for (const s of pair) conns.set(s, await RawConn.connect(s.ctrl));
  const blobOk = (rsp: Buffer) => ctrlResult(rsp) === 0 && rsp.length === 16 + rsp.readUInt32BE(8);
  const once = async (s: Server, n: number) => {
    const c = conns.get(s)!;
    const tGet = await timeLoop(c, CTRL.getPermanentBlob, blobFrame, n, blobOk);
    const rsp = await c.request(CTRL.getPermanentBlob, blobFrame);
    const blob = rsp.subarray(16);
    blobs.set(s, blob);
    if (ctrlResult(await c.request(CTRL.stop, ctrlFrame(4))) !== 0) throw new Error('STOP failed');
    const setMsg = setPermanentBlob(blob);
    const tSet = await timeLoop(c, setMsg, ctrlFrame(4), n, ctrlOk);
    if (ctrlResult(await c.request(CTRL.init, ctrlFrame(4))) !== 0) throw new Error('INIT failed');
    const d = await dataConn(s);
    if (responseCode(await d.request(T.startup2())) !== 0) throw new Error('Startup failed');
    return { get: median(tGet), set: median(tSet) };
  };
  for (const s of pair) await once(s, Math.max(2, z.nBlob >> 2));
  const res = await alternate(pair, z.reps, (s) => once(s, z.nBlob));
  for (const c of conns.values()) c.close();
  const sizes = pair.map((s) => `${s.program} ${blobs.get(s)?.length ?? 0} B`).join(', ');
  return [
    row(
      'blob.get.permanent',
      'CMD_GET_STATEBLOB permanent (NV filled), TCP',
      'us',
      get(res, 'tswtpm', 'get'),
      get(res, 'swtpm', 'get'),
      { target: RATIO_1, note: `blob sizes: ${sizes}` },
    ),
    row(
      'blob.set.permanent',
      'CMD_SET_STATEBLOB permanent (NV filled), TCP',
      'us',
      get(res, 'tswtpm', 'set'),
      get(res, 'swtpm', 'set'),
      { target: RATIO_1, note: `blob sizes: ${sizes}` },
    ),
  ];
}

/** TPM2_CreatePrimary RSA-2048 from the same seeds: the same key, the same work. */
export async function createPrimary(pair: Pair, z: Sizes): Promise<Row> {
  const cmd = T.createPrimaryRsa2(2048);
  const moduli = new Map<Program, string>();
  const once = async (s: Server) => {
    const c = await dataConn(s);
    const t0 = performance.now();
    const rsp = await c.request(cmd);
    const ms = performance.now() - t0;
    const { handle, modulus } = T.parseCreatePrimaryRsa2(rsp);
    moduli.set(s.program, modulus.toString('hex'));
    if (responseCode(await c.request(T.flushContext2(handle))) !== 0)
      throw new Error('FlushContext failed');
    return ms;
  };
  for (const s of pair) await once(s);
  const res = await alternate(pair, z.repsKey, async (s) => {
    const t: number[] = [];
    for (let i = 0; i < z.nKey; i++) t.push(await once(s));
    return { t: median(t) };
  });
  const m = [...moduli.values()];
  const same = m.length === 2 ? (m[0] === m[1] ? 'same key from both' : 'KEYS DIFFER') : '';
  return row(
    'key.createprimary.rsa2048',
    'TPM2_CreatePrimary RSA-2048, same seeds',
    'ms',
    get(res, 'tswtpm', 't'),
    get(res, 'swtpm', 't'),
    { note: same },
  );
}

/**
 * CMD_GET_CAPABILITY during an RSA-3072 CreatePrimary: the first 10 ms in, then every
 * 2 ms until the key is done; a repetition's figure is the median of those latencies
 * (and, separately, the worst one). tswtpm runs the key generation off its event loop;
 * swtpm's socket mode answers only after it, so it has one sample: the rest of the keygen.
 */
export async function ctrlDuringKeygen(pair: Pair, z: Sizes): Promise<Row[]> {
  const cmd = T.createPrimaryRsa2(3072);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const res = await alternate(pair, z.repsLong, async (s) => {
    const ctrl = await RawConn.connect(s.ctrl);
    const d = await dataConn(s);
    let done = false;
    const t0 = performance.now();
    const key = d.request(cmd).then((rsp) => {
      done = true;
      return rsp;
    });
    const lat: number[] = [];
    await sleep(10);
    while (!done) {
      const t1 = performance.now();
      const cap = await ctrl.request(CTRL.getCapability, ctrlFrame(8));
      lat.push(performance.now() - t1);
      if (ctrlResult(cap) !== 0) throw new Error('GET_CAPABILITY failed');
      await sleep(2);
    }
    const rsp = await key;
    const keyMs = performance.now() - t0;
    ctrl.close();
    const { handle } = T.parseCreatePrimaryRsa2(rsp);
    await d.request(T.flushContext2(handle));
    if (lat.length === 0) return { key: keyMs };
    return { cap: median(lat), worst: Math.max(...lat), key: keyMs };
  });
  return [
    row(
      'ctrl.during-keygen.getcapability',
      'CMD_GET_CAPABILITY during RSA-3072 CreatePrimary (median)',
      'ms',
      get(res, 'tswtpm', 'cap'),
      get(res, 'swtpm', 'cap'),
      {
        target: { kind: 'value-max', limit: 5, text: 'tswtpm < 5 ms' },
        note: 'first sent 10 ms into the CreatePrimary, then every 2 ms; swtpm answers once the key is done',
      },
    ),
    row(
      'ctrl.during-keygen.worst',
      'CMD_GET_CAPABILITY during RSA-3072 CreatePrimary (worst)',
      'ms',
      get(res, 'tswtpm', 'worst'),
      get(res, 'swtpm', 'worst'),
      { note: 'worst single answer per repetition: CPU scheduling on a loaded machine shows here' },
    ),
    row(
      'key.createprimary.rsa3072',
      'TPM2_CreatePrimary RSA-3072 (same seeds), during the rows above',
      'ms',
      get(res, 'tswtpm', 'key'),
      get(res, 'swtpm', 'key'),
    ),
  ];
}
