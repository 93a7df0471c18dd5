// A peer that half-closes (shutdown(SHUT_WR)) right after its request still gets the
// whole answer, then the close: `socat -t50 - TCP:...` / `UNIX-CLIENT:...` with the
// request on stdin, and a CMD_SET_DATAFD socket whose peer ends its writing side.
// The long TPM2_CreatePrimary RSA-2048 runs off tswtpm's event loop, so the 'end'
// arrives while it runs. Both servers start from one swtpm-made state, so the
// responses must be the same bytes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as T from '../../src/protocol/tpm/commands.js';
import { responseCode } from '../../src/protocol/tpm/header.js';
import { closeFd, socketPair } from '../../src/transport/fd-channel.js';
import { connectUnix } from '../../src/transport/unix-server.js';
import {
  type Endpoint,
  type Impl,
  type Server,
  type Transport,
  haveSwtpm,
  makeSharedState,
  startServer,
} from '../helpers/diff-servers.js';
import { Stream } from '../helpers/diff-stream.js';
import * as H from '../helpers/tpm-commands.js';

const IMPLS: Impl[] = haveSwtpm ? ['tswtpm', 'swtpm'] : ['tswtpm'];
const FLAGS = 'not-need-init,startup-clear';

/** socat -t50 - ADDRESS with `req` on stdin; resolves everything it printed. */
function socat(ep: Endpoint, req: Uint8Array): Promise<Buffer> {
  const addr = 'port' in ep ? `TCP:127.0.0.1:${ep.port}` : `UNIX-CLIENT:${ep.path}`;
  const p = spawn('socat', ['-t50', '-', addr], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out: Buffer[] = [];
  p.stdout.on('data', (d: Buffer) => out.push(d));
  p.stdin.end(req);
  return new Promise((resolve) => p.once('close', () => resolve(Buffer.concat(out))));
}

/** Everything a half-open socket receives after writing `req` and ending its side. */
function halfClose(sock: net.Socket, req: Uint8Array): Promise<Buffer> {
  const out: Buffer[] = [];
  sock.on('data', (d: Buffer) => out.push(d));
  sock.end(req);
  return new Promise((resolve) => sock.once('close', () => resolve(Buffer.concat(out))));
}

describe('half-closed peers get their answer', () => {
  let shared: string;
  const servers: Server[] = [];
  before(async () => {
    shared = haveSwtpm ? await makeSharedState() : '';
  });
  after(() => Promise.all(servers.map((s) => s.stop())));

  const start = async (impl: Impl, transport: Transport, noServer = false) => {
    const o = { transport, flags: FLAGS, noServer, ...(shared ? { stateFrom: shared } : {}) };
    const s = await startServer(impl, o);
    servers.push(s);
    return s;
  };

  for (const transport of ['tcp', 'unix'] as Transport[]) {
    it(`data channel over ${transport}: CreatePrimary RSA-2048 through socat`, async () => {
      const got: Partial<Record<Impl, Buffer>> = {};
      for (const impl of IMPLS) {
        const s = await start(impl, transport);
        got[impl] = await socat(s.data!, T.createPrimaryRsa2(2048));
      }
      const ours = got.tswtpm!;
      assert.equal(ours.length, ours.length >= 10 ? ours.readUInt32BE(2) : -1, H.hex(ours));
      assert.equal(responseCode(ours), 0);
      if (got.swtpm) assert.equal(H.hex(ours), H.hex(got.swtpm));
    });

    it(`control channel over ${transport}: STORE_VOLATILE behind a long command, through socat`, async () => {
      for (const impl of IMPLS) {
        const s = await start(impl, transport);
        const data = await Stream.connect(s.data!);
        data.write(H.createPrimaryRsaRandom(3072));
        await new Promise((r) => setTimeout(r, 20));
        const rsp = await socat(s.ctrl, Buffer.from('0000000a', 'hex'));
        assert.equal(rsp.toString('hex'), '00000000', impl);
        assert.equal(responseCode(await data.readTpm(60000)), 0);
        data.close();
      }
    });
  }

  it('a CMD_SET_DATAFD socket: CreatePrimary RSA-2048, then shutdown(SHUT_WR)', async () => {
    const got: Partial<Record<Impl, Buffer>> = {};
    for (const impl of IMPLS) {
      const s = await start(impl, 'unix', true);
      const ctrl = await connectUnix((s.ctrl as { path: string }).path);
      const [mine, theirs] = socketPair('stream');
      await ctrl.write(Buffer.from('00000010', 'hex'), [theirs]); // CMD_SET_DATAFD
      closeFd(theirs);
      const reply = await ctrl.read(5000);
      assert.equal(reply?.data.toString('hex'), '00000000', impl);
      const sock = new net.Socket({ fd: mine, allowHalfOpen: true });
      got[impl] = await halfClose(sock, T.createPrimaryRsa2(2048));
      ctrl.close();
    }
    assert.equal(responseCode(got.tswtpm!), 0);
    assert.equal(got.tswtpm!.length, got.tswtpm!.readUInt32BE(2));
    if (got.swtpm) assert.equal(H.hex(got.tswtpm!), H.hex(got.swtpm));
  });
});
