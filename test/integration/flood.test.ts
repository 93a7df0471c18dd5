// Peers that flood: a data client that writes TPM commands and never reads, a control
// client that streams CMD_HASH_DATA while long TPM commands hold the TPM, and a crowd
// of connects while one client holds the channel. The server's memory and fds stay
// bounded, and it keeps serving afterwards. Debian's swtpm 0.7.1 runs the same peers
// for reference (its figures are reported as test diagnostics).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as T from '../../src/protocol/tpm/commands.js';
import { responseCode } from '../../src/protocol/tpm/header.js';
import {
  type Impl,
  type Server,
  type Transport,
  haveSwtpm,
  startServer,
} from '../helpers/diff-servers.js';
import { Stream } from '../helpers/diff-stream.js';
import { connect, crowd, fdCount, flood, rssKiB, rssPeak } from '../helpers/peers.js';
import * as H from '../helpers/tpm-commands.js';

const MiB = 1024;
/** Growth allowed over the RSS before the flood (KiB). */
const RSS_BOUND = 64 * MiB;
const IMPLS: Impl[] = haveSwtpm ? ['tswtpm', 'swtpm'] : ['tswtpm'];
const servers: Server[] = [];
after(() => Promise.all(servers.map((s) => s.stop())));

async function start(impl: Impl, transport: Transport): Promise<Server> {
  const s = await startServer(impl, { transport, flags: 'not-need-init,startup-clear' });
  servers.push(s);
  return s;
}

/** The server still serves: a new data client gets GetRandom, the control channel answers. */
async function stillServes(s: Server): Promise<void> {
  const d = await Stream.connect(s.data!);
  d.write(T.getRandom2(8));
  assert.equal(responseCode(await d.readTpm()), 0);
  d.close();
  const c = await Stream.connect(s.ctrl);
  c.write('00000001');
  assert.equal((await c.read(8)).readUInt32BE(0), 0);
  c.close();
}

for (const transport of ['tcp', 'unix'] as Transport[]) {
  for (const impl of IMPLS) {
    it(`${impl}: a ${transport} data client that never reads cannot grow the server`, async (t) => {
      const s = await start(impl, transport);
      const pid = s.proc.pid!;
      const base = rssKiB(pid);
      const sock = await connect(s.data!);
      const peak = rssPeak(pid);
      const r = await flood(sock, T.getRandom2(48), {
        maxBytes: 200 * 1024 * 1024,
        maxMs: 12000,
        idleMs: 1500,
      });
      const top = peak.stop();
      t.diagnostic(
        `${impl} ${transport}: sent ${(r.sent / 1048576).toFixed(1)} MiB, stalled ${r.stalled}, RSS ${base} -> peak ${top} KiB`,
      );
      sock.destroy();
      assert.ok(top - base < RSS_BOUND, `RSS grew by ${top - base} KiB`);
      // swtpm takes one read (up to 4105 bytes) as one command, so it swallows the flood
      // in pieces and its few responses fit the socket buffers; tswtpm answers each command.
      if (impl === 'tswtpm') assert.ok(r.stalled, 'the server kept reading unanswered commands');
      await stillServes(s);
    });
  }
}

// swtpm reads CMD_HASH_DATA synchronously in its single thread (the data channel waits),
// so it has no queue to bound; only tswtpm runs this one.
for (const impl of ['tswtpm'] as Impl[]) {
  it(`${impl}: CMD_HASH_DATA streamed while long TPM commands run stays bounded`, async (t) => {
    const s = await start(impl, 'tcp');
    const pid = s.proc.pid!;
    const ctrl = await Stream.connect(s.ctrl);
    ctrl.write('00000006'); // CMD_HASH_START
    assert.equal((await ctrl.read(4)).readUInt32BE(0), 0);
    ctrl.close();
    const data = await Stream.connect(s.data!);
    let busy = true;
    const keygens = (async () => {
      let n = 0;
      while (busy) {
        data.write(H.createPrimaryRsaRandom(3072));
        const rsp = await data.readTpm(60000);
        n++;
        if (responseCode(rsp) !== 0) continue;
        data.write(T.flushContext2(rsp.readUInt32BE(10)));
        await data.readTpm();
      }
      return n;
    })();
    await new Promise((r) => setTimeout(r, 20));
    const base = rssKiB(pid);
    const sock = await connect(s.ctrl);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(7, 0); // CMD_HASH_DATA
    head.writeUInt32BE(0xfffffff0, 4);
    sock.write(head);
    const peak = rssPeak(pid);
    const r = await flood(sock, Buffer.alloc(65536), {
      maxBytes: 2048 * 1024 * 1024,
      maxMs: 8000,
      idleMs: 8000,
    });
    const top = peak.stop();
    busy = false;
    const n = await keygens;
    t.diagnostic(
      `${impl}: ${n} keygens, sent ${(r.sent / 1048576).toFixed(1)} MiB of hash data, RSS ${base} -> peak ${top} KiB`,
    );
    sock.destroy();
    data.close();
    assert.ok(top - base < RSS_BOUND, `RSS grew by ${top - base} KiB`);
    await stillServes(s);
  });
}

describe('a crowd of connects while one client holds the channel', () => {
  for (const transport of ['tcp', 'unix'] as Transport[]) {
    for (const impl of IMPLS) {
      it(`${impl} ${transport}: waiting clients stay in the kernel, the next one is served`, async (t) => {
        const s = await start(impl, transport);
        const pid = s.proc.pid!;
        const first = await Stream.connect(s.data!);
        first.write(T.getRandom2(8));
        assert.equal(responseCode(await first.readTpm()), 0);
        // The next client: queued in the backlog (TCP) or accepted later (both).
        const second = await Stream.connect(s.data!);
        second.write(T.getRandom2(8));
        const before = fdCount(pid);
        const c = await crowd(s.data!, 2000, 1000);
        const held = fdCount(pid);
        t.diagnostic(
          `${impl} ${transport}: server fds ${before} -> ${held} with 2000 connects (${c.connected()} completed)`,
        );
        for (const x of c.socks) x.destroy();
        assert.ok(held < 50, `the server holds ${held} fds`);
        first.close();
        assert.equal(responseCode(await second.readTpm()), 0);
        second.close();
        await stillServes(s);
      });
    }
  }
});
