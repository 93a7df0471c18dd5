// Malformed input: seeded random control requests sent to Debian's swtpm 0.7.1 and to
// tswtpm side by side (each reply equal to swtpm's, or the docs/compat.md difference
// for exactly that request); clients that hang up mid-body, mid-HASH_DATA and
// mid-SET_STATEBLOB; random bytes on the data channel. Afterwards the process still
// serves the next control client and a data-channel GetRandom.
// Replay a run with FUZZ_SEED=<seed> (printed in the test names).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as T from '../../src/protocol/tpm/commands.js';
import { responseCode } from '../../src/protocol/tpm/header.js';
import { CAPS_TPM2, RANDOM_BYTES } from '../helpers/diff-allowed.js';
import { type ExchangeOptions, cmd, exchange, render, u32 } from '../helpers/diff-exchange.js';
import { Rng, judge, randomRequest } from '../helpers/diff-fuzz.js';
import { type Script, diffScript } from '../helpers/diff-run.js';
import {
  type Server,
  type Transport,
  haveSwtpm,
  makeSharedState,
  startServer,
} from '../helpers/diff-servers.js';
import * as H from '../helpers/tpm-commands.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x7357c7);
const LANES: Transport[] = ['tcp', 'tcp', 'unix', 'unix'];
const CASES_PER_LANE = 60;
const DATA_CASES_PER_LANE = 50;
/** A reply is one write: a short quiet time after it; "no reply" waits past the 500 ms deadline. */
const FAST: ExchangeOptions = { quietMs: 60, emptyQuietMs: 800 };
const HANG_UP: ExchangeOptions = { quietMs: 0, emptyQuietMs: 0 };

/** The server still answers a new control client and a data-channel GetRandom. */
async function stillServes(s: Server): Promise<void> {
  const caps = await exchange(s.ctrl, [{ data: '00000001' }], FAST);
  assert.match(caps.hex, /^000000000001ffff$|^000000000000ffff$/, `${s.impl}: caps after fuzzing`);
  const r = await exchange(s.data!, [{ data: T.getRandom2(16) }], FAST);
  assert.equal(
    responseCode(Buffer.from(r.hex, 'hex')),
    0,
    `${s.impl}: GetRandom after fuzzing: ${render(r)}`,
  );
  assert.equal(r.hex.length, 2 * 28);
}

describe(
  'malformed control requests vs Debian swtpm 0.7.1',
  { concurrency: true, skip: !haveSwtpm && 'swtpm not installed' },
  () => {
    const shared = haveSwtpm ? makeSharedState() : Promise.resolve('');
    LANES.forEach((transport, lane) => {
      const seed = (SEED + lane) >>> 0;
      it(
        `${CASES_PER_LANE} random requests over ${transport} (seed ${seed})`,
        { timeout: 120000 },
        async () => {
          const opts = { transport, flags: 'not-need-init,startup-clear', stateFrom: await shared };
          const [ref, ours] = await Promise.all([
            startServer('swtpm', opts),
            startServer('tswtpm', opts),
          ]);
          try {
            const rng = new Rng(seed);
            const bad: string[] = [];
            for (let i = 0; i < CASES_PER_LANE; i++) {
              const req = randomRequest(rng);
              const [a, b] = await Promise.all([
                exchange(ref.ctrl, [{ data: req }], FAST),
                exchange(ours.ctrl, [{ data: req }], FAST),
              ]);
              const m = judge(req, render(a), render(b));
              if (m !== undefined) bad.push(`#${i} ${m}`);
            }
            assert.deepEqual(bad, []);
            await stillServes(ref);
            await stillServes(ours);
          } finally {
            await Promise.all([ref.stop(), ours.stop()]);
          }
        },
      );
    });

    /** Clients that hang up in the middle of a request; the next client is served. */
    const hangUps: Script = async (c) => {
      await c.x('INIT code + 2 body bytes, hang up', '00000002 0000', HANG_UP);
      await c.x('caps after it', '00000001', { allow: CAPS_TPM2 });
      await c.x('connect and hang up', [], HANG_UP);
      await c.x('1 byte, hang up', '00', HANG_UP);
      await c.x('GET_STATEBLOB code + 5 bytes, hang up', '0000000c 0000000000', HANG_UP);
      await c.x('caps after them', '00000001', { allow: CAPS_TPM2 });
      await c.x('HASH_START', '00000006');
      await c.x(
        'HASH_DATA 8192 announced, 1000 sent, hang up',
        Buffer.concat([cmd(7, u32(8192)), Buffer.alloc(1000)]),
        HANG_UP,
      );
      await c.x(
        'HASH_DATA 8192 announced, 6000 sent, hang up',
        [{ data: Buffer.concat([cmd(7, u32(8192)), Buffer.alloc(6000)]), pauseMs: 50 }],
        HANG_UP,
      );
      await c.x('caps after mid-HASH_DATA', '00000001', { allow: CAPS_TPM2 });
      await c.x('HASH_START again', '00000006');
      await c.x('HASH_DATA 4 bytes', '00000007 00000004 01020304');
      await c.x('HASH_END', '00000008');
      const pcr = await c.d('PCR_Read 17', T.pcrRead2(17));
      c.check(
        'PCR 17 = extend(sha256(01020304))',
        H.pcrValueHex(Buffer.from(pcr.hex, 'hex')) ===
          H.extendChain(H.sha256(Buffer.from('01020304', 'hex'))),
      );
      const perm = (await c.x('GET_STATEBLOB permanent', cmd(0x0c, `${u32(0)}${u32(1)}${u32(0)}`)))
        .hex;
      await c.x('STOP', '0000000e');
      await c.x(
        'SET_STATEBLOB 5000 announced, 2000 sent, hang up',
        Buffer.concat([cmd(0x0d, `${u32(0)}${u32(1)}${u32(5000)}`), Buffer.alloc(2000)]),
        HANG_UP,
      );
      await c.x(
        'SET_STATEBLOB 9000 announced, 6000 sent, hang up',
        [
          {
            data: Buffer.concat([cmd(0x0d, `${u32(0)}${u32(2)}${u32(9000)}`), Buffer.alloc(6000)]),
            pauseMs: 50,
          },
        ],
        HANG_UP,
      );
      await c.x('caps after mid-SET_STATEBLOB', '00000001', { allow: CAPS_TPM2 });
      const blob = Buffer.from(perm, 'hex').subarray(16);
      await c.x(
        'SET_STATEBLOB permanent, whole',
        Buffer.concat([cmd(0x0d, `${u32(0)}${u32(1)}${u32(blob.length)}`), blob]),
      );
      await c.x('INIT', '00000002 00000001');
      await c.d('Startup', T.startup2());
      await c.d('GetRandom', T.getRandom2(16), { mask: RANDOM_BYTES });
    };
    for (const transport of ['tcp', 'unix'] as Transport[]) {
      it(`clients hanging up mid-request over ${transport}`, { timeout: 120000 }, async () => {
        assert.deepEqual(
          await diffScript(
            { transport, stateFrom: await shared, flags: 'not-need-init,startup-clear' },
            hangUps,
          ),
          [],
        );
      });
    }
  },
);

/** A reply on the data channel: TPM responses (or TCG-prefixed ones) back to back. */
function wellFormed(hex: string): boolean {
  let b = Buffer.from(hex, 'hex');
  while (b.length > 0) {
    if (b.length >= 10 && [0x8001, 0x8002, 0x00c4].includes(b.readUInt16BE(0))) {
      const n = b.readUInt32BE(2);
      if (n < 10 || n > b.length) return false;
      b = b.subarray(n);
    } else if (b.length >= 18) {
      const n = b.readUInt32BE(0);
      if (n < 10 || 4 + n + 4 > b.length || b.readUInt32BE(4 + n) !== 0) return false;
      b = b.subarray(8 + n);
    } else return false;
  }
  return true;
}

function randomCommand(r: Rng): Buffer {
  const x = r.next();
  if (x < 0.3) return r.bytes(1 + r.int(64));
  const params = r.bytes(r.int(40));
  const tag = r.pick([0x8001, 0x8002, 0x00c1, r.int(0x10000)]);
  const cc = x < 0.4 ? 0x20001000 : 0x11f + r.int(0x80);
  const size = 10 + params.length;
  const head = Buffer.alloc(10);
  head.writeUInt16BE(tag, 0);
  const lie = r.next() < 0.1 ? r.int(64) : size;
  head.writeUInt32BE(lie, 2);
  head.writeUInt32BE(cc, 6);
  const command = Buffer.concat([head, params]);
  if (r.next() < 0.1) {
    return Buffer.concat([
      Buffer.from([0, 0, 0, 8, r.int(8)]),
      Buffer.from(u32(command.length), 'hex'),
      command,
    ]);
  }
  return command;
}

describe('random bytes on the data channel', { concurrency: true }, () => {
  for (const [lane, transport] of (['tcp', 'unix'] as Transport[]).entries()) {
    const seed = (SEED + 100 + lane) >>> 0;
    it(
      `${DATA_CASES_PER_LANE} random writes over ${transport} (seed ${seed})`,
      { timeout: 120000 },
      async () => {
        const s = await startServer('tswtpm', { transport, flags: 'not-need-init,startup-clear' });
        try {
          const rng = new Rng(seed);
          const bad: string[] = [];
          for (let i = 0; i < DATA_CASES_PER_LANE; i++) {
            const req = randomCommand(rng);
            const r = await exchange(s.data!, [{ data: req }], { quietMs: 60, emptyQuietMs: 700 });
            if (!wellFormed(r.hex)) bad.push(`#${i} ${req.toString('hex')} → ${render(r)}`);
          }
          assert.deepEqual(bad, []);
          await stillServes(s);
        } finally {
          await s.stop();
        }
      },
    );
  }
});
