// CMD_CANCEL_TPM_CMD really cancels a long TPM command, and GET_CAPABILITY,
// SET_LOCALITY and GET_CONFIG are answered while one runs, whereas STORE_VOLATILE
// waits for it (docs/compat.md, "Deliberate improvements"). The long command is an
// RSA-3072 TPM2_CreatePrimary with a random `unique`, so every try generates a new
// key. Assertions are on the order of events, not on wall-clock thresholds.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as T from '../../src/protocol/tpm/commands.js';
import { responseCode } from '../../src/protocol/tpm/header.js';
import { type Server, type Transport, startServer } from '../helpers/diff-servers.js';
import { Stream } from '../helpers/diff-stream.js';
import * as H from '../helpers/tpm-commands.js';

const TPM_RC_CANCELED = 0x909;
const TRIES = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const transport of ['tcp', 'unix'] as Transport[]) {
  describe(`long TPM command over ${transport}`, () => {
    let server: Server;
    let data: Stream;
    let ctrl: Stream;

    before(async () => {
      server = await startServer('tswtpm', { transport, flags: 'not-need-init,startup-clear' });
      data = await Stream.connect(server.data!);
      ctrl = await Stream.connect(server.ctrl);
    });
    after(async () => {
      data?.close();
      ctrl?.close();
      await server?.stop();
    });

    /** Frees the object slot a successful CreatePrimary used. */
    const release = async (rsp: Buffer) => {
      if (responseCode(rsp) !== 0) return;
      data.write(T.flushContext2(rsp.readUInt32BE(10)));
      assert.equal(responseCode(await data.readTpm()), 0);
    };

    it('GET_CAPABILITY, SET_LOCALITY, GET_CONFIG are answered during it; STORE_VOLATILE after it', async () => {
      const tries: string[][] = [];
      for (let i = 0; i < TRIES; i++) {
        const ev: string[] = [];
        data.write(H.createPrimaryRsaRandom(3072));
        const tpm = data.readTpm().then((r) => {
          ev.push('tpm response');
          return r;
        });
        await sleep(10);
        const ask = async (name: string, req: string, n: number) => {
          ev.push(`${name} sent`);
          ctrl.write(req);
          const r = await ctrl.read(n);
          ev.push(name);
          return r.toString('hex');
        };
        assert.equal(await ask('GET_CAPABILITY', '00000001', 8), '000000000001ffff');
        assert.equal(await ask('SET_LOCALITY', '00000005 00', 4), '00000000');
        assert.equal(await ask('GET_CONFIG', '0000000f', 8), '0000000000000000');
        assert.equal(await ask('STORE_VOLATILE', '0000000a', 4), '00000000');
        const rsp = await tpm;
        assert.equal(responseCode(rsp), 0, 'CreatePrimary succeeds');
        await release(rsp);
        tries.push(ev);
        // A command sent while the key was generated is never held up by it.
        for (const name of ['GET_CAPABILITY', 'SET_LOCALITY', 'GET_CONFIG']) {
          if (ev.indexOf(`${name} sent`) < ev.indexOf('tpm response')) {
            assert.ok(ev.indexOf(name) < ev.indexOf('tpm response'), `${name} waited: ${ev}`);
          }
        }
        // Only a try whose keygen outlasted all of them shows the full ordering.
        if (ev.indexOf('STORE_VOLATILE sent') < ev.indexOf('tpm response')) {
          assert.deepEqual(ev, [
            'GET_CAPABILITY sent',
            'GET_CAPABILITY',
            'SET_LOCALITY sent',
            'SET_LOCALITY',
            'GET_CONFIG sent',
            'GET_CONFIG',
            'STORE_VOLATILE sent',
            'tpm response',
            'STORE_VOLATILE',
          ]);
          return;
        }
      }
      assert.fail(
        `the key was generated too fast to observe in ${TRIES} tries: ${JSON.stringify(tries)}`,
      );
    });

    it('CMD_CANCEL_TPM_CMD makes it answer TPM_RC_CANCELED', async () => {
      const seen: number[] = [];
      for (let i = 0; i < TRIES; i++) {
        data.write(H.createPrimaryRsaRandom(3072));
        const tpm = data.readTpm();
        await sleep(10);
        ctrl.write('00000009');
        assert.equal((await ctrl.read(4)).toString('hex'), '00000000');
        const rsp = await tpm;
        seen.push(responseCode(rsp)!);
        if (responseCode(rsp) === TPM_RC_CANCELED) {
          assert.equal(rsp.length, 10, 'a bare error response');
          // The TPM goes on working, and the cancel does not stick to the next command.
          data.write(T.getRandom2(8));
          assert.equal(responseCode(await data.readTpm()), 0);
          data.write(H.createPrimaryRsaRandom(2048));
          const next = await data.readTpm();
          assert.equal(responseCode(next), 0);
          await release(next);
          return;
        }
        // The key was ready before the cancel arrived: try again with a new one.
        assert.equal(responseCode(rsp), 0);
        await release(rsp);
      }
      assert.fail(
        `no TPM_RC_CANCELED in ${TRIES} tries (results ${seen.map((r) => r.toString(16))})`,
      );
    });
  });
}
