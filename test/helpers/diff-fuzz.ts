// Random control requests (seeded) and the judgement of a swtpm 0.7.1 / tswtpm reply
// pair: equal, or one of the docs/compat.md differences for exactly that request.
// The body-length rules below are written from control-channel.md §2.2, not taken
// from our own command table.
import { ROW, allowed } from './diff-allowed.js';
import { norm } from './diff-exchange.js';
import type { Allowed } from './diff-run.js';

/** mulberry32: a small seeded PRNG, so a failing case can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  u32(): number {
    return Math.floor(this.next() * 0x100000000) >>> 0;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** §2.2: body bytes each command needs before swtpm processes it (0: just the code). */
const AWAITED: Readonly<Record<number, number>> = { 2: 4, 5: 1, 11: 1, 7: 4, 12: 12, 13: 12 };
/** §2.2 "at least N" body class (the others: none, exactly 0, exactly 4). */
const AT_LEAST: Readonly<Record<number, number>> = {
  5: 1,
  11: 1,
  7: 4,
  12: 12,
  13: 12,
  17: 4,
  18: 16,
  19: 4,
};
/** swtpm's receive buffer (code + ptm_hdata). */
const RECV = 4104;

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
};

function body(r: Rng, code: number): Buffer {
  const need = AT_LEAST[code] ?? (code === 2 ? 4 : 0);
  const x = r.next();
  if (code === 7 || code === 0x0d) {
    const head = code === 7 ? Buffer.alloc(0) : Buffer.concat([u32(r.int(4)), u32(r.int(5))]);
    const y = r.next();
    const len = y < 0.15 ? r.u32() : r.int(64);
    const data =
      y < 0.15
        ? r.int(16)
        : y < 0.3
          ? Math.max(0, len - 1 - r.int(4))
          : y < 0.4
            ? len + 1 + r.int(4)
            : len;
    if (x < 0.1) return r.bytes(r.int(need));
    return Buffer.concat([head, u32(len), r.bytes(data)]);
  }
  if (code === 0x0c) {
    const b = Buffer.concat([
      u32(r.int(4)),
      u32(r.int(5)),
      u32(r.next() < 0.8 ? r.int(2000) : r.u32()),
    ]);
    return x < 0.1
      ? b.subarray(0, r.int(12))
      : x < 0.2
        ? Buffer.concat([b, r.bytes(1 + r.int(8))])
        : b;
  }
  if (code === 0x12) {
    const flags = r.next() < 0.8 ? r.int(8) : r.u32();
    const b = Buffer.concat([
      u32(0),
      u32(flags),
      u32(r.next() < 0.8 ? r.int(300) : r.u32()),
      u32(0),
    ]);
    return x < 0.1 ? b.subarray(0, r.int(16)) : b;
  }
  if (code === 5 || code === 0x0b) {
    const loc = Buffer.from([r.next() < 0.8 ? r.int(6) : r.int(256)]);
    return x < 0.1 ? Buffer.alloc(0) : x < 0.3 ? Buffer.concat([loc, Buffer.alloc(3)]) : loc;
  }
  if (x < 0.5) return r.bytes(need);
  if (x < 0.7) return r.bytes(need + 1 + r.int(8));
  if (x < 0.85 && need > 0) return r.bytes(r.int(need));
  return r.bytes(r.int(20));
}

/** Whether a request would change the TPM's running state (kept out of the fuzz). */
function disruptive(req: Buffer): boolean {
  const code = req.readUInt32BE(0);
  const n = req.length - 4;
  return (code === 2 && n === 4) || ((code === 3 || code === 0x0e) && n === 0);
}

/** One random request, written in one write. */
export function randomRequest(r: Rng): Buffer {
  for (;;) {
    const x = r.next();
    let req: Buffer;
    if (x < 0.1) req = r.bytes(1 + r.int(24));
    else if (x < 0.2)
      req = Buffer.concat([u32(r.pick([0, 0x14, 0x15, 0xff, 0x100, r.u32()])), r.bytes(r.int(12))]);
    else if (x < 0.3) {
      const a = 1 + r.int(0x13);
      const b = 1 + r.int(0x13);
      req = Buffer.concat([u32(a), body(r, a), u32(b), body(r, b)]);
    } else {
      const code = 1 + r.int(0x13);
      req = Buffer.concat([u32(code), body(r, code)]);
    }
    if (req.length >= 4 && disruptive(req)) continue;
    return req;
  }
}

/**
 * The compat.md difference this request may show (with the exact replies), or
 * undefined when the replies must be equal. Replies are `render()`ed strings.
 */
export function allowedFor(req: Buffer, tpm2: boolean): Allowed | undefined {
  const deadline = allowed([ROW.deadline], '|EOF', '00000003|EOF');
  if (req.length < 4) return deadline;
  const code = req.readUInt32BE(0);
  const n = req.length - 4;
  const need = AWAITED[code] ?? 0;
  if (n < need) return deadline;
  if (code === 1) {
    return tpm2
      ? allowed([ROW.caps], '00000000 0000ffff', '00000000 0001ffff')
      : allowed([ROW.caps], '00000000 00007fff', '00000000 00017fff');
  }
  if (code === 0x13) {
    return n >= 4
      ? allowed([ROW.lockStorage], '0000000a', '00000000')
      : allowed([ROW.lockStorage, ROW.lateBody, ROW.deadline], '0000000a', '00000003|EOF');
  }
  if ((code === 0x11 || code === 0x12) && n < AT_LEAST[code]!) {
    return allowed([ROW.lateBody, ROW.deadline], '00000003', '00000003|EOF');
  }
  if (code === 7 || code === 0x0d) {
    const head = code === 7 ? 8 : 16;
    const len = req.readUInt32BE(head - 4);
    const got = req.length - head;
    if (code === 0x0d && len > 524288 && got < len) {
      return allowed([ROW.bigBlob, ROW.dataDeadline], '|EOF', '00000009|EOF');
    }
    if (got < len && got < Math.min(len + head, RECV) - head) {
      return allowed([ROW.dataDeadline], '|EOF', '00000003|EOF');
    }
    if (code === 7 && got > len) return allowed([ROW.hashOverrun], '', '00000003');
  }
  if (code === 0x0c) {
    const type = req.readUInt32BE(8);
    if (type < 1 || type > 3) {
      return allowed(
        [ROW.unknownBlob],
        '00000800 00000000 00000000 00000000',
        '00000009 00000000 00000000 00000000',
      );
    }
  }
  return undefined;
}

const short = (v: string) => (v.length > 80 ? `${v.slice(0, 64)}..(${v.length / 2} bytes)` : v);

/** GET_STATEBLOB of the volatile state: its content (nonces, clocks) differs per run. */
function volatileHeader(req: Buffer, v: string): string {
  const volatile = req.length >= 16 && req.readUInt32BE(0) === 0x0c && req.readUInt32BE(8) === 2;
  return volatile && v.startsWith('00000000') ? `${v.slice(0, 2 * 32)}..${v.length}` : v;
}

/** Judges one reply pair; returns a mismatch description or undefined. */
export function judge(req: Buffer, swtpm: string, ours: string, tpm2 = true): string | undefined {
  if (volatileHeader(req, swtpm) === volatileHeader(req, ours)) return undefined;
  const a = allowedFor(req, tpm2);
  if (a !== undefined && swtpm === norm(a.swtpm) && ours === norm(a.tswtpm)) return undefined;
  const rows = a
    ? ` (compat.md "${a.rows.map((x) => x.row).join('" + "')}" expects ${norm(a.swtpm)} / ${norm(a.tswtpm)})`
    : '';
  return `request ${short(req.toString('hex'))}: swtpm ${short(swtpm)} / tswtpm ${short(ours)}${rows}`;
}
