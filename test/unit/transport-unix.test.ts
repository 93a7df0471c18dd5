// Real AF_UNIX sockets through libc (koffi): fd passing, one-client-at-a-time, modes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  type CloseReason,
  FdChannel,
  type Message,
  closeFd,
  socketPair,
} from '../../src/transport/fd-channel.js';
import * as L from '../../src/transport/libc.js';
import {
  UnixServer,
  type UnixServerOptions,
  connectUnix,
} from '../../src/transport/unix-server.js';

let dir = '';
let fdsAtStart = 0;
const openFds = (): number => readdirSync('/proc/self/fd').length;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tswtpm-unix-'));
  // The process's one epoll set (transport/poll.ts) is made with the first watched fd
  // and kept: make it before counting, so that it does not count as a leak.
  const [a, b] = socketPair('stream');
  new FdChannel(a, { onMessage: () => {} }).close();
  closeFd(b);
  fdsAtStart = openFds();
});
after(() => rmSync(dir, { recursive: true, force: true }));

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const sockPath = (): string => join(dir, `s${n++}.sock`);

/** A server whose messages and closes land in queues the test awaits. */
function harness(extra: Partial<UnixServerOptions> = {}) {
  const msgs: Array<{ msg: Message; ch: FdChannel }> = [];
  const closes: CloseReason[] = [];
  let wake: (() => void) | undefined;
  const poke = () => {
    wake?.();
    wake = undefined;
  };
  const srv = new UnixServer({
    ...(extra.fd === undefined ? { path: sockPath() } : {}),
    onMessage: (msg, ch) => {
      msgs.push({ msg, ch });
      poke();
    },
    onClose: (reason) => {
      closes.push(reason);
      poke();
    },
    ...extra,
  });
  const until = async <T>(get: () => T | undefined, ms = 2000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error('timed out');
      await Promise.race([
        new Promise<void>((r) => {
          wake = r;
        }),
        sleep(20),
      ]);
    }
  };
  return {
    srv,
    msgs,
    closes,
    /** `ms`: how long to wait; a spawned client (python3) may take seconds to start on a loaded machine. */
    next: (ms?: number) => until(() => msgs.shift(), ms),
    closed: () => until(() => closes.shift()),
  };
}

// A client independent of our code: Python's socket.send_fds (sendmsg + SCM_RIGHTS).
const PY_CLIENT = `
import socket, sys
a, b = socket.socketpair()
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
socket.send_fds(c, [bytes.fromhex('00000010')], [b.fileno()])
b.close()
print(c.recv(100).hex())
a.sendall(b'over the data fd')
print(a.recv(100).decode())
`;

test('python client: 00 00 00 10 + one fd on the same recvmsg; data flows over the fd', async () => {
  const h = harness();
  const py = new Promise<string>((res, rej) =>
    execFile('python3', ['-c', PY_CLIENT, h.srv.path!], (e, out) => (e ? rej(e) : res(out))),
  );
  const { msg, ch } = await h.next(60_000);
  assert.equal(hex(msg.data), '00000010');
  assert.equal(msg.fds.length, 1);
  assert.equal(msg.ctrunc, false);
  const data = new FdChannel(msg.fds[0]!, { bufferSize: 4105 });
  assert.equal(data.kind, 'stream');
  await ch.write(Buffer.from('00000000', 'hex'));
  const cmd = await data.read(2000);
  assert.equal(cmd?.data.toString(), 'over the data fd');
  await data.write(Buffer.from('reply'));
  assert.equal(await py, '00000000\nreply\n');
  data.close();
  h.srv.closeServer();
});

test('no fds → fds=[]; two fds → both, usable; over-limit fds → ctrunc', async () => {
  const h = harness({ maxFds: 2 });
  const c = await connectUnix(h.srv.path!);
  await c.write(Buffer.from('00000001', 'hex'));
  let m = (await h.next()).msg;
  assert.deepEqual([hex(m.data), m.fds], ['00000001', []]);

  const [s1, s2] = socketPair('stream');
  const [d1, d2] = socketPair('dgram');
  await c.write(Buffer.from('00000010', 'hex'), [s2, d2]);
  m = (await h.next()).msg;
  assert.equal(hex(m.data), '00000010');
  assert.equal(m.fds.length, 2);
  // Received fds are close-on-exec (MSG_CMSG_CLOEXEC).
  for (const fd of m.fds) assert.equal(L.isCloexec(fd), true);
  L.send(s1, Buffer.from('S'), 0);
  L.send(d1, Buffer.from('D'), 0);
  const rs = new FdChannel(m.fds[0]!);
  const rd = new FdChannel(m.fds[1]!);
  assert.equal((await rs.read(1000))?.data.toString(), 'S');
  assert.equal((await rd.read(1000))?.data.toString(), 'D');
  for (const fd of [s1, s2, d1, d2]) closeFd(fd);
  rs.close();
  rd.close();

  const four = [...socketPair('stream'), ...socketPair('stream')];
  await c.write(Buffer.from('00000010', 'hex'), four.slice(0, 3));
  m = (await h.next()).msg;
  assert.equal(m.ctrunc, true);
  assert.equal(m.fds.length, 2);
  for (const fd of [...m.fds, ...four]) closeFd(fd);
  c.close();
  h.srv.closeServer();
});

test('received SOCK_STREAM fd works as new net.Socket({ fd }); SOCK_DGRAM does not', async () => {
  const [a, b] = socketPair('stream');
  const sock = new net.Socket({ fd: b, readable: true, writable: true });
  const got = new Promise<string>((r) => sock.once('data', (d) => r(d.toString())));
  L.send(a, Buffer.from('to node'), 0);
  assert.equal(await got, 'to node');
  sock.write('from node');
  const peer = new FdChannel(a);
  assert.equal((await peer.read(1000))?.data.toString(), 'from node');
  sock.destroy();
  peer.close();

  const [x, y] = socketPair('dgram');
  // libuv's uv_guess_handle() knows AF_UNIX only as a stream (pipe): a datagram fd is UNKNOWN.
  assert.throws(() => new net.Socket({ fd: y }), { code: 'ERR_INVALID_FD_TYPE' });
  closeFd(x);
  closeFd(y);
});

test('FdChannel on SOCK_DGRAM: one datagram = one message, each way', async () => {
  const [x, y] = socketPair('dgram');
  const got: string[] = [];
  const ch = new FdChannel(y, {
    onMessage: async (m, c) => {
      got.push(m.data.toString());
      await c.write(Buffer.concat([Buffer.from('re:'), m.data]));
    },
  });
  const peer = new FdChannel(x);
  await peer.write(Buffer.from('one'));
  await peer.write(Buffer.from('two'));
  assert.equal((await peer.read(1000))?.data.toString(), 're:one');
  assert.equal((await peer.read(1000))?.data.toString(), 're:two');
  assert.deepEqual(got, ['one', 'two']);
  // A datagram peer that closes gives no poll event; the next send reports it.
  peer.close();
  await assert.rejects(ch.write(Buffer.from('x')), { code: 'ECONNREFUSED' });
  assert.equal(ch.closed, true);
});

test('one client at a time: the second waits in the backlog, then its bytes arrive', async () => {
  const h = harness();
  const c1 = await connectUnix(h.srv.path!);
  await c1.write(Buffer.from('c1'));
  assert.equal((await h.next()).msg.data.toString(), 'c1');
  const c2 = await connectUnix(h.srv.path!); // completes in the kernel backlog
  await c2.write(Buffer.from('c2 early'));
  await sleep(150);
  assert.equal(h.msgs.length, 0);
  c1.close();
  assert.equal(await h.closed(), 'hangup');
  assert.equal((await h.next()).msg.data.toString(), 'c2 early');
  c2.close();
  h.srv.closeServer();
});

test('socket file: unlinked before bind, default mode 0770, custom mode, unlinked by closeServer', () => {
  const p = sockPath();
  writeFileSync(p, 'stale');
  const a = new UnixServer({ path: p, onMessage: () => {} });
  assert.ok(statSync(p).isSocket());
  assert.equal(statSync(p).mode & 0o777, 0o770);
  a.closeServer();
  assert.equal(existsSync(p), false);
  const b = new UnixServer({ path: p, mode: 0o600, onMessage: () => {} });
  assert.equal(statSync(p).mode & 0o777, 0o600);
  b.closeServer();
  b.closeServer();
  assert.equal(existsSync(p), false);
});

test('large writes complete: 200 KB, and 1 MB to a slow reader (POLLOUT path)', async () => {
  for (const size of [200 * 1024, 1024 * 1024]) {
    const h = harness({
      onMessage: async (_m, ch) => {
        const blob = Buffer.alloc(size);
        for (let i = 0; i < size; i++) blob[i] = i & 0xff;
        await ch.write(blob);
      },
    });
    const c = await connectUnix(h.srv.path!, { bufferSize: 65536 });
    await c.write(Buffer.from('go'));
    await sleep(50); // let the kernel buffer fill before we read
    const parts: Buffer[] = [];
    let total = 0;
    while (total < size) {
      const m = await c.read(2000);
      assert.ok(m, 'data expected');
      parts.push(m.data);
      total += m.data.length;
    }
    const all = Buffer.concat(parts);
    assert.equal(all.length, size);
    assert.equal(all[size - 1], (size - 1) & 0xff);
    c.close();
    h.srv.closeServer();
  }
});

test('read(timeout) inside onMessage: more bytes, then null at the deadline', async () => {
  const seen: string[] = [];
  let client: FdChannel | undefined;
  const done = new Promise<void>((resolve) => {
    const srv = new UnixServer({
      path: sockPath(),
      onMessage: async (m, ch) => {
        seen.push(m.data.toString());
        const more = await ch.read(500);
        seen.push(more ? more.data.toString() : 'null');
        const t0 = Date.now();
        const none = await ch.read(100);
        seen.push(none === null ? 'null' : 'data', String(Date.now() - t0 >= 90));
        srv.closeServer();
        resolve();
      },
    });
    void (async () => {
      client = await connectUnix(srv.path!);
      await client.write(Buffer.from('head'));
      await sleep(50);
      await client.write(Buffer.from('body'));
    })();
  });
  await done;
  client?.close();
  assert.deepEqual(seen, ['head', 'body', 'null', 'true']);
});

test('hang-up is detected; clientFd mode serves one given socket, fd= mode an inherited listener', async () => {
  const [mine, theirs] = socketPair('stream');
  const reasons: CloseReason[] = [];
  const got: string[] = [];
  const srv = new UnixServer({
    clientFd: theirs,
    onConnection: (ch) => got.push(`conn ${ch.kind}`),
    onMessage: (m) => {
      got.push(m.data.toString());
    },
    onClose: (r) => reasons.push(r),
  });
  assert.equal(srv.listenFd, -1);
  L.send(mine, Buffer.from('hi'), 0);
  await sleep(50);
  closeFd(mine);
  await sleep(50);
  assert.deepEqual(got, ['conn stream', 'hi']);
  assert.deepEqual(reasons, ['hangup']);
  assert.equal(srv.client, null);
  srv.closeServer();

  const p = sockPath();
  const lfd = L.socket(L.SOCK_STREAM);
  L.bind(lfd, p);
  L.listen(lfd, 1);
  const h2 = harness({ fd: lfd });
  const c = await connectUnix(p);
  await c.write(Buffer.from('via fd='));
  assert.equal((await h2.next()).msg.data.toString(), 'via fd=');
  c.close();
  assert.equal(await h2.closed(), 'hangup');
  h2.srv.closeServer();
  rmSync(p, { force: true });
});

test('a failing handler closes the client with "error"; the next client is served', async () => {
  let calls = 0;
  const h = harness({
    onMessage: async () => {
      calls++;
      if (calls === 1) throw new Error('boom');
    },
  });
  const c1 = await connectUnix(h.srv.path!);
  await c1.write(Buffer.from('x'));
  assert.equal(await h.closed(), 'error');
  assert.equal(await c1.read(1000), null); // EOF from the server side
  assert.equal(c1.closed, true);
  await assert.rejects(c1.write(Buffer.from('y')), { code: 'ERR_CHANNEL_CLOSED' });
  const c2 = await connectUnix(h.srv.path!);
  await c2.write(Buffer.from('z'));
  await sleep(50);
  assert.equal(calls, 2);
  c2.close();
  h.srv.closeServer();
});

test('no message is delivered while a handler promise is pending; order is kept', async () => {
  const log: string[] = [];
  const h = harness({
    onMessage: async (m) => {
      log.push(`start ${m.data}`);
      await sleep(60);
      log.push(`end ${m.data}`);
    },
  });
  const c = await connectUnix(h.srv.path!);
  await c.write(Buffer.from('a'));
  await sleep(20);
  await c.write(Buffer.from('b'));
  await sleep(200);
  assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b']);
  c.close();
  h.srv.closeServer();
});

test('no fd leaks', async () => {
  await sleep(20);
  assert.equal(openFds(), fdsAtStart);
});
