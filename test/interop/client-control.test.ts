/**
 * ControlClient and TpmClient against Debian's swtpm 0.7.1 and against tswtpm: every
 * control method, per-call and persistent connections, TCP and Unix, SET_DATAFD with a
 * real fd, the TCG send-command prefix.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControlClient } from '../../src/client/control.js';
import { TpmError } from '../../src/client/errors.js';
import { TpmClient } from '../../src/client/tpm.js';
import { parsePcrRead2, pcrExtend2, pcrRead2, startup2 } from '../../src/protocol/tpm/commands.js';
import { closeFd, socketPair } from '../../src/transport/fd-channel.js';
import { type SwtpmOptions, TSWTPM, startSwtpm } from '../helpers/start-swtpm.js';

const KINDS: ReadonlyArray<[string, SwtpmOptions]> = [
  ['debian', {}],
  ['tswtpm', { command: TSWTPM }],
];

function isTpmError(result: number, message?: string) {
  return (e: unknown) => {
    assert.ok(e instanceof TpmError, String(e));
    assert.equal(e.code, 'ERR_TPM_RESULT');
    assert.equal(e.result, result);
    if (message !== undefined) assert.equal(e.message, message);
    return true;
  };
}

const rc = (rsp: Buffer) => rsp.readUInt32BE(6);

for (const [kind, base] of KINDS) {
  describe(`ControlClient against ${kind} swtpm`, () => {
    it('every command over a Unix socket, one connection per call', async () => {
      const s = await startSwtpm({ ...base, ctrl: 'unix', server: 'tcp' });
      const c = new ControlClient(s.ctrl);
      const tpm = new TpmClient(s.server!);
      try {
        const caps = await c.getCapability();
        assert.equal(caps.mask & 0xffff, 0xffff);
        assert.equal(caps.flags.SET_DATAFD, true);
        assert.equal(caps.flags.LOCK_STORAGE, kind === 'tswtpm');
        await assert.rejects(
          c.getTpmEstablished(),
          isTpmError(0xa, 'CMD_GET_TPMESTABLISHED: TPM_BAD_ORDINAL (0xa)'),
        );
        assert.deepEqual(await c.getConfig(), { flags: 0, fileKey: false, migrationKey: false });
        assert.deepEqual(await c.setBufferSize(), {
          bufferSize: 4096,
          minSize: 2808,
          maxSize: 4096,
        });
        const info = await c.getInfo(3);
        assert.deepEqual(info.TPMSpecification, { family: '2.0', level: 0, revision: 164 });
        assert.equal((await c.getInfoText(0)).length, 2);
        await c.init({ deleteVolatile: true });
        await assert.rejects(c.setBufferSize(4096), isTpmError(0xa));
        assert.equal(await c.getTpmEstablished(), false);
        await c.setLocality(3);
        await assert.rejects(
          c.setLocality(5),
          isTpmError(0x3d, 'CMD_SET_LOCALITY: TPM_BAD_LOCALITY (0x3d)'),
        );
        await c.setLocality(0);
        await c.resetTpmEstablished(3);
        await assert.rejects(c.resetTpmEstablished(0), isTpmError(0x3d));

        assert.equal(rc(await tpm.transmit(startup2())), 0);
        assert.equal(rc(await tpm.transmit(pcrExtend2(10, Buffer.alloc(32, 7)))), 0);
        const pcr10 = parsePcrRead2(await tpm.transmit(pcrRead2(10)));

        // 10000 bytes: three HASH_DATA commands; the H-CRTM sequence sets the bit
        await c.hash(Buffer.alloc(10000, 0x41));
        assert.equal(await c.getTpmEstablished(), true);
        await c.hashStart();
        await c.hashData(
          (async function* () {
            yield Buffer.from('a');
            yield Buffer.alloc(5000);
          })(),
        );
        await c.hashEnd();
        await c.cancelTpmCmd();
        await c.storeVolatile();

        const perm = await c.getStateBlob('permanent');
        assert.ok(perm && perm.data.length > 500 && !perm.encrypted);
        const tail = await c.getStateBlob('permanent', { offset: 100 });
        assert.deepEqual(Buffer.from(tail!.data), Buffer.from(perm.data.subarray(100)));
        const vol = await c.getStateBlob('volatile');
        assert.ok(vol && vol.data.length > 3072);
        assert.equal(await c.getStateBlob('savestate'), undefined);
        if (kind === 'debian') await assert.rejects(c.lockStorage(0), isTpmError(0xa));
        else await c.lockStorage(0);

        await c.stop();
        await assert.rejects(c.getTpmEstablished(), isTpmError(0xa));
        assert.equal(rc(await tpm.transmit(pcrRead2(10))), 0x101); // TPM_RC_FAILURE when stopped
        await assert.rejects(c.setStateBlob('permanent', Buffer.from('garbage')), isTpmError(0x3));
        await c.setStateBlob('permanent', perm.data);
        await c.setStateBlob(2, vol.data);
        await c.init();
        assert.deepEqual(parsePcrRead2(await tpm.transmit(pcrRead2(10))), pcr10);

        await c.shutdown();
        await new Promise<void>((r) =>
          s.process.exitCode !== null ? r() : s.process.once('exit', () => r()),
        );
      } finally {
        await tpm.close();
        await s.close();
      }
    });

    it('a persistent connection over TCP, data with the TCG prefix', async () => {
      const s = await startSwtpm({ ...base, ctrl: 'tcp', server: 'tcp' });
      const c = new ControlClient(s.ctrl, { persistent: true, timeoutMs: 5000 });
      const tpm = new TpmClient(s.server!, { sendCommandHeader: true, locality: 0 });
      try {
        await c.init();
        const calls = await Promise.all([c.getConfig(), c.setBufferSize(), c.getInfo(1)]);
        assert.equal(calls[1].maxSize, 4096);
        for (let i = 0; i < 3; i++) assert.ok((await c.getStateBlob('volatile'))!.data.length > 0);
        await assert.rejects(c.setLocality(7), isTpmError(0x3d));
        assert.equal(rc(await tpm.transmit(startup2())), 0);
        assert.equal(parsePcrRead2(await tpm.transmit(pcrRead2(0))).length, 32);
        await c.close();
        assert.equal((await c.getCapability()).flags.INIT, true); // reconnects
        await c.close();
      } finally {
        await tpm.close();
        await s.close();
      }
    });

    it('SET_DATAFD hands over one end of a socketpair', async () => {
      const s = await startSwtpm({ ...base, ctrl: 'unix', server: 'none' });
      const c = new ControlClient(s.ctrl);
      const [mine, theirs] = socketPair('stream');
      let tpm: TpmClient | undefined;
      try {
        await c.setDataFd(theirs);
        closeFd(theirs);
        await c.init();
        tpm = new TpmClient({ fd: mine });
        assert.equal(rc(await tpm.transmit(startup2())), 0);
        assert.equal(parsePcrRead2(await tpm.transmit(pcrRead2(16))).length, 32);
        await assert.rejects(c.setDataFd(mine), isTpmError(0x1f)); // a data fd is in use
      } finally {
        if (tpm) await tpm.close();
        else closeFd(mine);
        await s.close();
      }
    });
  });
}
