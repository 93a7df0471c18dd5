/**
 * Client failure modes (a server that accepts and never answers, nobody listening, a
 * peer that hangs up) and startTpm() running our tswtpm binary.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ControlClient } from '../../src/client/control.js';
import { TpmConnectionError, TpmProtocolError, TpmTimeoutError } from '../../src/client/errors.js';
import { startTpm } from '../../src/client/start.js';
import { TpmClient } from '../../src/client/tpm.js';
import { parsePcrRead2, pcrExtend2, pcrRead2, startup2 } from '../../src/protocol/tpm/commands.js';
import { freePort } from '../helpers/start-swtpm.js';

/** A TCP server that accepts and then does `mode` with every connection. */
async function server(
  mode: 'silent' | 'hangup' | 'one-answer',
  answer = Buffer.alloc(8),
  path?: string,
): Promise<{ port: number; close(): void }> {
  const socks: net.Socket[] = [];
  const srv = net.createServer((s) => {
    socks.push(s);
    s.on('error', () => {});
    if (mode === 'hangup') s.once('data', () => s.end(Buffer.from([0, 0])));
    // like swtpm's `disconnect` data option: one answer per connection
    if (mode === 'one-answer') s.once('data', () => s.end(answer));
  });
  await new Promise<void>((r) => (path ? srv.listen(path, r) : srv.listen(0, '127.0.0.1', r)));
  return {
    port: path ? 0 : (srv.address() as net.AddressInfo).port,
    close: () => {
      for (const s of socks) s.destroy();
      srv.close();
    },
  };
}

describe('client errors', () => {
  it('a silent control server: TpmTimeoutError after the per-call timeout', async () => {
    const srv = await server('silent');
    try {
      for (const persistent of [false, true]) {
        const c = new ControlClient({ port: srv.port }, { persistent, timeoutMs: 200 });
        const t0 = Date.now();
        await assert.rejects(c.getCapability(), (e: unknown) => {
          assert.ok(e instanceof TpmTimeoutError);
          assert.equal(e.code, 'ETIMEDOUT');
          assert.match(e.message, /^CMD_GET_CAPABILITY: no response within 200 ms$/);
          return true;
        });
        const dt = Date.now() - t0;
        assert.ok(dt >= 190 && dt < 2000, `${dt} ms`);
        await assert.rejects(c.stop({ timeoutMs: 50 }), TpmTimeoutError); // per-call override
        await c.close();
      }
    } finally {
      srv.close();
    }
  });

  it('a silent data server: TpmTimeoutError', async () => {
    const srv = await server('silent');
    try {
      const tpm = new TpmClient({ port: srv.port }, { timeoutMs: 150 });
      await assert.rejects(tpm.transmit(startup2()), { code: 'ETIMEDOUT' });
      await tpm.close();
    } finally {
      srv.close();
    }
  });

  it('nobody listening: TpmConnectionError ECONNREFUSED / ENOENT', async () => {
    const port = await freePort();
    await assert.rejects(new ControlClient({ port }).getCapability(), (e: unknown) => {
      assert.ok(e instanceof TpmConnectionError);
      assert.equal(e.code, 'ECONNREFUSED');
      assert.equal(e.message, `cannot connect to 127.0.0.1:${port}: ECONNREFUSED`);
      return true;
    });
    const path = join(tmpdir(), `nonexistent-${process.pid}.sock`);
    await assert.rejects(new ControlClient({ path }).init(), {
      name: 'TpmConnectionError',
      code: 'ENOENT',
    });
    await assert.rejects(new TpmClient({ port }).transmit(startup2()), { code: 'ECONNREFUSED' });
  });

  it('a peer that hangs up mid-response: TpmProtocolError', async () => {
    const srv = await server('hangup');
    try {
      await assert.rejects(new ControlClient({ port: srv.port }).getConfig(), (e: unknown) => {
        assert.ok(e instanceof TpmProtocolError);
        assert.equal(e.message, 'CMD_GET_CONFIG: connection closed after 2 response bytes');
        return true;
      });
    } finally {
      srv.close();
    }
  });
});

describe('kept connections the server closed', () => {
  it('are replaced transparently (control and data)', async () => {
    const ctrl = await server('one-answer');
    const data = await server('one-answer', Buffer.from('80010000000a00000000', 'hex'));
    try {
      const c = new ControlClient({ port: ctrl.port }, { persistent: true });
      for (let i = 0; i < 3; i++) assert.equal((await c.getConfig()).flags, 0);
      await c.close();
      // over a Unix socket a closed peer is only noticed when the next request fails
      const path = join(tmpdir(), `one-answer-${process.pid}.sock`);
      const unix = await server('one-answer', Buffer.alloc(8), path);
      const cu = new ControlClient({ path }, { persistent: true });
      for (let i = 0; i < 3; i++) assert.equal((await cu.getConfig()).flags, 0);
      await cu.close();
      unix.close();
      const tpm = new TpmClient({ port: data.port });
      for (let i = 0; i < 3; i++) assert.equal((await tpm.transmit(startup2())).length, 10);
      await tpm.close();
    } finally {
      ctrl.close();
      data.close();
    }
  });
});

describe('startTpm', () => {
  it('runs tswtpm on Unix sockets and cleans up', async () => {
    const t = await startTpm();
    let closed = false;
    try {
      assert.ok(t.pid > 0);
      assert.equal((await t.control.getCapability()).flags.INIT, true);
      // startup-clear is the default: the TPM is already started
      assert.equal(parsePcrRead2(await t.tpm.transmit(pcrRead2(0))).length, 32);
      await t.close();
      closed = true;
      assert.notEqual(t.process.exitCode ?? t.process.signalCode, null);
      assert.equal(existsSync(t.dir), false);
    } finally {
      if (!closed) await t.close();
    }
  });

  it('reports a server that cannot start', async () => {
    await assert.rejects(startTpm({ args: ['--no-such-option'], timeoutMs: 5000 }), /exited/);
  });
});
