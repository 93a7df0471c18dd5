// transport/tcp4.ts: the libc-bound IPv4 listener that replaces node:net's listen() for
// dotted-quad bind addresses. Checked against real sockets: a node:net client connects,
// the port is the kernel's choice for port 0, the fd is never 0-2 and is close-on-exec,
// and a port in use fails with EADDRINUSE (and leaves no fd behind).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { describe, it } from 'node:test';
import * as L from '../../src/transport/libc.js';
import { listenTcp4, parseIpv4 } from '../../src/transport/tcp4.js';

const openFds = () => readdirSync('/proc/self/fd').length;

describe('parseIpv4', () => {
  it('takes dotted quads without leading zeros only', () => {
    assert.deepEqual(parseIpv4('127.0.0.1'), [127, 0, 0, 1]);
    assert.deepEqual(parseIpv4('0.0.0.0'), [0, 0, 0, 0]);
    assert.deepEqual(parseIpv4('255.255.255.255'), [255, 255, 255, 255]);
    for (const bad of [
      'localhost',
      '::1',
      '1.2.3',
      '1.2.3.4.5',
      '256.0.0.1',
      '01.2.3.4',
      '1.2.3.',
      'a.b.c.d',
      '',
    ]) {
      assert.equal(parseIpv4(bad), undefined, bad);
    }
  });
});

describe('listenTcp4', () => {
  it('listens on a kernel-chosen port that a client reaches; the fd is >= 3 and close-on-exec', async () => {
    const l = listenTcp4('127.0.0.1', 0);
    assert.ok(l !== undefined);
    try {
      assert.ok(l.port > 0);
      assert.ok(l.fd >= 3);
      assert.equal(L.isCloexec(l.fd), true);
      await new Promise<void>((resolve, reject) => {
        const c = connect(l.port, '127.0.0.1', () => {
          c.destroy();
          resolve();
        });
        c.on('error', reject);
      });
      const client = L.accept(l.fd);
      assert.ok(client >= 0, 'the connection is pending on our fd');
      L.close(client);
    } finally {
      L.close(l.fd);
    }
  });

  it('a port in use: SysError EADDRINUSE, no fd left open', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    const before = openFds();
    try {
      assert.throws(() => listenTcp4('127.0.0.1', port), { name: 'SysError', code: 'EADDRINUSE' });
      assert.equal(openFds(), before);
    } finally {
      busy.close();
    }
  });

  it('not a dotted quad: undefined (node:net binds it)', () => {
    assert.equal(listenTcp4('localhost', 0), undefined);
    assert.equal(listenTcp4('::1', 0), undefined);
  });
});
