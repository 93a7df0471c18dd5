// `tswtpm socket` driven with raw TPM commands over its data channel (issue 2,
// acceptance). The data-channel behaviour tests run against Debian's swtpm 0.7.1 too,
// with the same expectations, so every expected byte string below is what the C
// swtpm answers (control-channel.md §3).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import {
  TPM2_SU_CLEAR,
  TPM2_SU_STATE,
  TPM_ST_CLEAR,
  createPrimaryRsa2,
  flushContext2,
  getRandom2,
  getRandom12,
  parseCreatePrimaryRsa2,
  parseGetRandom2,
  parseGetRandom12,
  parsePcrRead2,
  parseResponse,
  pcrExtend2,
  pcrRead2,
  pcrReset2,
  sendCommandPrefix,
  setLocalityVendor,
  shutdown2,
  startup2,
  startup12,
} from '../../src/protocol/tpm/commands.js';
import {
  type Addr,
  type Program,
  RawConn,
  type StartOptions,
  ctrlInit,
  freePort,
  haveSwtpm,
  startTpm,
  stopAll,
} from '../helpers/spawn-tswtpm.js';
import { RC, extendedOnce, hex } from '../helpers/tpm-commands.js';

after(stopAll);

/** tswtpm, and Debian's swtpm as the oracle for the same expectations when installed. */
const PROGRAMS: readonly Program[] = haveSwtpm ? ['tswtpm', 'swtpm'] : ['tswtpm'];

const rcOf = (rsp: Uint8Array) => parseResponse(rsp).rc;
const DIGEST = createHash('sha256').update('tswtpm socket test').digest();

/** Starts, connects to the data channel, runs `fn`, and always stops the process. */
async function withTpm<T>(
  o: StartOptions,
  fn: (c: RawConn, s: Awaited<ReturnType<typeof startTpm>>) => Promise<T>,
): Promise<T> {
  const s = await startTpm(o);
  let c: RawConn | undefined;
  try {
    c = await RawConn.connect(s.data!);
    return await fn(c, s);
  } finally {
    c?.destroy();
    await s.p.stop();
  }
}

describe('tswtpm socket --tpm2: a real TPM behind the data channel', () => {
  for (const kind of ['tcp', 'unixio'] as const) {
    it(`${kind} data + ${kind} ctrl: Startup, GetRandom, PCR_Extend/Read, CreatePrimary, Shutdown(STATE), restart with startup-state keeps PCR 10`, async () => {
      const first = await startTpm({ data: kind, ctrl: kind, flags: 'not-need-init' });
      const c = await RawConn.connect(first.data!);
      assert.equal(hex(await c.transact(startup2(TPM2_SU_CLEAR))), '80010000000a00000000');

      const r1 = parseGetRandom2(await c.transact(getRandom2(16)));
      const r2 = parseGetRandom2(await c.transact(getRandom2(16)));
      assert.equal(r1.length, 16);
      assert.equal(r2.length, 16);
      assert.notDeepEqual(r1, r2);

      for (const pcr of [10, 16]) {
        assert.equal(rcOf(await c.transact(pcrExtend2(pcr, DIGEST))), RC.SUCCESS);
        const value = parsePcrRead2(await c.transact(pcrRead2(pcr)));
        assert.equal(hex(value), hex(extendedOnce(DIGEST)), `PCR ${pcr}`);
      }

      const key = parseCreatePrimaryRsa2(await c.transact(createPrimaryRsa2(2048), 60000));
      assert.equal(key.modulus.length, 256);
      assert.equal(key.handle >>> 24, 0x80, 'a transient object handle');
      assert.equal(rcOf(await c.transact(flushContext2(key.handle))), RC.SUCCESS);
      if (kind === 'tcp') {
        const big = parseCreatePrimaryRsa2(await c.transact(createPrimaryRsa2(3072), 60000));
        assert.equal(big.modulus.length, 384);
        assert.equal(rcOf(await c.transact(flushContext2(big.handle))), RC.SUCCESS);
      }

      assert.equal(rcOf(await c.transact(shutdown2(TPM2_SU_STATE))), RC.SUCCESS);
      c.destroy();
      assert.deepEqual(await first.p.stop('SIGTERM'), { code: 0, signal: null });
      if (kind === 'unixio') {
        const data = first.data as { path: string };
        const ctrl = first.ctrl as { path: string };
        assert.equal(existsSync(data.path), false, 'data socket file removed at exit');
        assert.equal(existsSync(ctrl.path), false, 'ctrl socket file removed at exit');
      }

      await withTpm(
        { data: kind, ctrl: kind, dir: first.dir, flags: 'not-need-init,startup-state' },
        async (c2) => {
          // PCR 10 has the PC Client stateSave attribute; PCR 16 (debug) does not, so
          // TPM2_Startup(STATE) resets it, in libtpms and therefore in swtpm too.
          const pcr10 = parsePcrRead2(await c2.transact(pcrRead2(10)));
          assert.equal(hex(pcr10), hex(extendedOnce(DIGEST)));
          const pcr16 = parsePcrRead2(await c2.transact(pcrRead2(16)));
          assert.equal(hex(pcr16), hex(Buffer.alloc(32)));
          assert.equal(parseGetRandom2(await c2.transact(getRandom2(8))).length, 8);
        },
      );
    });
  }

  it('TPM 1.2 (no --tpm2): TPM_Startup(ST_CLEAR) and TPM_GetRandom', async () => {
    await withTpm({ tpm2: false, flags: 'not-need-init' }, async (c) => {
      assert.equal(hex(await c.transact(startup12(TPM_ST_CLEAR))), '00c40000000a00000000');
      const r = parseGetRandom12(await c.transact(getRandom12(16)));
      assert.equal(r.length, 16);
      assert.equal(parseResponse(await c.transact(getRandom12(16))).tag, 0x00c4);
    });
  });
});

for (const program of PROGRAMS) {
  describe(`${program} socket: data channel as control-channel.md §3 says`, () => {
    it('not running before INIT: a fatal error with the configured version tag; running before Startup: TPM_RC_INITIALIZE', async () => {
      await withTpm({ program }, async (c, s) => {
        // The request's own tag does not matter, only the configured TPM version.
        assert.equal(hex(await c.transact(getRandom2(8))), '80010000000a00000101');
        assert.equal(hex(await c.transact(getRandom12(8))), '80010000000a00000101');
        assert.equal(await ctrlInit(s.ctrl!), 0);
        assert.equal(hex(await c.transact(getRandom2(8))), '80010000000a00000100');
        assert.equal(hex(await c.transact(startup2(TPM2_SU_CLEAR))), '80010000000a00000000');
        assert.equal(parseGetRandom2(await c.transact(getRandom2(8))).length, 8);
      });
      await withTpm({ program, tpm2: false }, async (c, s) => {
        assert.equal(hex(await c.transact(getRandom12(8))), '00c40000000a00000009');
        assert.equal(hex(await c.transact(getRandom2(8))), '00c40000000a00000009');
        assert.equal(await ctrlInit(s.ctrl!), 0);
        // TPM 1.2 before TPM_Startup: TPM_INVALID_POSTINIT.
        assert.equal(hex(await c.transact(getRandom12(8))), '00c40000000a00000026');
      });
    });

    it('TCG TPM_SEND_COMMAND prefix: length, response, 4-byte ack (TPM 2); not stripped for TPM 1.2', async () => {
      await withTpm({ program, flags: 'startup-clear' }, async (c) => {
        const cmd = sendCommandPrefix(0, getRandom2(8));
        assert.equal(hex(cmd.subarray(0, 9)), '00000008000000000c');
        c.write(cmd);
        const r = await c.prefixedResponse();
        assert.equal(r.length, 4 + 20 + 4);
        assert.equal(hex(r.subarray(0, 4)), '00000014');
        assert.equal(hex(r.subarray(4, 16)), '800100000014000000000008');
        assert.equal(hex(r.subarray(24)), '00000000');
        // Raw commands keep working on the same connection.
        assert.equal(parseGetRandom2(await c.transact(getRandom2(8))).length, 8);
      });
      await withTpm({ program, tpm2: false, flags: 'startup-clear' }, async (c) => {
        // The prefix goes to libtpms as part of the command: a plain TPM 1.2 error.
        assert.equal(
          hex(await c.transact(sendCommandPrefix(0, getRandom12(8)))),
          '00c40000000a00000019',
        );
      });
    });

    it('--flags startup-clear, then the client sends Startup itself', async () => {
      await withTpm({ program, flags: 'startup-clear' }, async (c) => {
        assert.equal(hex(await c.transact(startup2(TPM2_SU_CLEAR))), '80010000000a00000100');
      });
      await withTpm({ program, tpm2: false, flags: 'startup-clear' }, async (c) => {
        assert.equal(hex(await c.transact(startup12(TPM_ST_CLEAR))), '00c40000000a00000026');
      });
    });

    it('vendor SetLocality (0x20001000): refused without allow-set-locality', async () => {
      await withTpm({ program, flags: 'startup-clear' }, async (c) => {
        assert.equal(hex(await c.transact(setLocalityVendor(true, 2))), '80010000000a00000101');
        // Locality unchanged: PCR 20 cannot be reset from locality 0.
        assert.notEqual(rcOf(await c.transact(pcrReset2(20))), RC.SUCCESS);
      });
      await withTpm({ program, tpm2: false, flags: 'startup-clear' }, async (c) => {
        assert.equal(hex(await c.transact(setLocalityVendor(false, 2))), '00c40000000a00000009');
      });
    });

    it('vendor SetLocality with --locality allow-set-locality[,reject-locality-4]', async () => {
      const extra = ['--locality', 'allow-set-locality'];
      await withTpm({ program, flags: 'startup-clear', extra }, async (c) => {
        const pcr20At0 = rcOf(await c.transact(pcrReset2(20)));
        assert.notEqual(pcr20At0, RC.SUCCESS);
        assert.equal(hex(await c.transact(setLocalityVendor(true, 2))), '80010000000a00000000');
        assert.equal(rcOf(await c.transact(pcrReset2(20))), RC.SUCCESS, 'locality 2 took effect');
        assert.equal(hex(await c.transact(setLocalityVendor(true, 4))), '80010000000a00000000');
        assert.equal(hex(await c.transact(setLocalityVendor(true, 5))), '80010000000a00000107');
        // Shorter than 11 bytes: TPM_RC_INSUFFICIENT.
        const short = setLocalityVendor(true, 1).subarray(0, 10);
        assert.equal(hex(await c.transact(short)), '80010000000a0000009a');
      });
      const reject4 = ['--locality', 'allow-set-locality,reject-locality-4'];
      await withTpm({ program, tpm2: false, flags: 'startup-clear', extra: reject4 }, async (c) => {
        assert.equal(hex(await c.transact(setLocalityVendor(false, 3))), '00c40000000a00000000');
        assert.equal(hex(await c.transact(setLocalityVendor(false, 4))), '00c40000000a0000003d');
        assert.equal(hex(await c.transact(setLocalityVendor(false, 5))), '00c40000000a0000003d');
      });
    });

    for (const kind of ['tcp', 'unixio'] as const) {
      it(`two ${kind} data clients: the second waits (not dropped) and is served once the first leaves`, async () => {
        await withTpm({ program, data: kind, flags: 'startup-clear' }, async (a, s) => {
          const events: string[] = [];
          assert.equal(parseGetRandom2(await a.transact(getRandom2(8))).length, 8);
          events.push('A1');
          const b = await RawConn.connect(s.data as Addr);
          try {
            b.write(getRandom2(8));
            const bAnswer = b.response().then((r) => {
              events.push('B1');
              return r;
            });
            assert.equal(await b.silentFor(300), true, 'B is not served while A is connected');
            assert.equal(parseGetRandom2(await a.transact(getRandom2(8))).length, 8);
            events.push('A2');
            a.close();
            assert.equal(await a.closedWithin(5000), true, 'the server closes its side too');
            events.push('A gone');
            assert.equal(parseGetRandom2(await bAnswer).length, 8);
            assert.deepEqual(events, ['A1', 'A2', 'A gone', 'B1']);
            // B stays connected and is served normally now.
            assert.equal(parseGetRandom2(await b.transact(getRandom2(4))).length, 4);
          } finally {
            b.destroy();
          }
        });
      });
    }

    it('--server ...,disconnect and legacy -p close the connection after each response', async () => {
      for (const variant of ['disconnect', '-p'] as const) {
        const o: StartOptions =
          variant === 'disconnect'
            ? { program, flags: 'startup-clear', serverOpts: 'disconnect' }
            : { program, flags: 'startup-clear', data: 'none' };
        const port = variant === '-p' ? await freePort() : 0;
        const s = await startTpm(variant === '-p' ? { ...o, extra: ['-p', String(port)] } : o);
        const addr = variant === '-p' ? { port } : (s.data as Addr);
        try {
          for (let i = 0; i < 2; i++) {
            const c = await RawConn.connect(addr);
            assert.equal(parseGetRandom2(await c.transact(getRandom2(8))).length, 8, variant);
            assert.equal(await c.closedWithin(5000), true, `${variant}: closed by the server`);
            c.destroy();
          }
        } finally {
          await s.p.stop();
        }
      }
    });

    it('--server type=tcp without port= listens on $TPM_PORT', async () => {
      const port = await freePort();
      const env = { TPM_PORT: String(port) };
      const extra = ['--server', 'type=tcp'];
      const s = await startTpm({ program, flags: 'startup-clear', data: 'none', extra, env });
      try {
        const c = await RawConn.connect({ port });
        assert.equal(parseGetRandom2(await c.transact(getRandom2(8))).length, 8);
        c.destroy();
      } finally {
        await s.p.stop();
      }
    });

    it('-t/--terminate: the process exits (0) when the data client leaves', async () => {
      const s = await startTpm({ program, flags: 'startup-clear', extra: ['-t'] });
      const c = await RawConn.connect(s.data as Addr);
      assert.equal(parseGetRandom2(await c.transact(getRandom2(8))).length, 8);
      assert.equal(s.p.running, true);
      c.close();
      const e = await s.p.wait(5000);
      assert.equal(e.timedOut, false, `exited by itself: ${s.p.stderr()}`);
      assert.equal(e.code, 0);
    });
  });
}
