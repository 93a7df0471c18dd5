// transport/stream.ts: accepted TCP and Unix clients served with libc calls (fd-conn.ts,
// FdChannel) instead of node:net. Real sockets, real peers (node:net clients, and a
// libc client for SCM_RIGHTS): chunk sizes, back-pressure with one onDrain, half-close,
// and fds sent on a data socket never reaching this process.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Conn, ConnServer } from '../../src/transport/conn.js';
import { socketPair } from '../../src/transport/fd-channel.js';
import * as L from '../../src/transport/libc.js';
import { DATA_READ_SIZE, listen } from '../../src/transport/stream.js';
import { connectUnix } from '../../src/transport/unix-server.js';

const dir = mkdtempSync(join(tmpdir(), 'tswtpm-stream-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const openFds = (): number => readdirSync('/proc/self/fd').length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A started server whose next connection is awaited with `conn()`. */
async function server(opts: Parameters<typeof listen>[0]) {
  const s: ConnServer = await listen(opts);
  const waiting: Array<(c: Conn) => void> = [];
  const ready: Conn[] = [];
  s.onConn = (c) => {
    const w = waiting.shift();
    if (w) w(c);
    else ready.push(c);
  };
  s.start();
  const conn = (): Promise<Conn> =>
    ready.length > 0 ? Promise.resolve(ready.shift()!) : new Promise((r) => waiting.push(r));
  return { s, conn };
}

/** Collects a Conn's chunks and events. */
function watch(c: Conn) {
  const chunks: Buffer[] = [];
  const ev = { drains: 0, ends: 0, closes: 0 };
  c.onData = (chunk) => chunks.push(Buffer.from(chunk));
  c.onDrain = () => ev.drains++;
  c.onEnd = () => ev.ends++;
  c.onClose = () => ev.closes++;
  return { chunks, ev };
}

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 500 && !cond(); i++) await sleep(10);
  assert.ok(cond(), what);
};

test("TCP: a read is at most swtpm's 4105 bytes; a large answer waits for the reader, then one onDrain", async () => {
  const { s, conn } = await server({ port: 0, host: '127.0.0.1' });
  const client = net.connect(Number(s.address), '127.0.0.1');
  const got: Buffer[] = [];
  client.on('data', (d) => got.push(d));
  client.pause(); // the peer does not read yet
  const c = await conn();
  const w = watch(c);
  client.write(Buffer.alloc(10_000, 7));
  await until(() => w.chunks.reduce((n, b) => n + b.length, 0) === 10_000, 'all bytes read');
  assert.ok(w.chunks.every((b) => b.length <= DATA_READ_SIZE));
  assert.ok(w.chunks.length >= 3);

  const big = Buffer.alloc(8 << 20);
  for (let i = 0; i < big.length; i += 4096) big[i] = (i >> 12) & 0xff;
  assert.equal(c.write(big), false, 'more than the socket buffers take: queued');
  assert.equal(c.write(Buffer.from('tail')), false, 'queued behind it');
  await sleep(50);
  assert.equal(w.ev.drains, 0);
  client.resume();
  await until(() => Buffer.concat(got).length === big.length + 4, 'everything arrives');
  const all = Buffer.concat(got);
  assert.ok(all.subarray(0, big.length).equals(big), 'in order, intact');
  assert.equal(all.subarray(big.length).toString(), 'tail');
  await until(() => w.ev.drains === 1, 'one onDrain');
  assert.equal(c.write(Buffer.from('small')), true, 'taken at once');
  client.destroy();
  // a FIN is onEnd; a reset (the unread 'small' above) closes at once
  await until(() => w.ev.ends + w.ev.closes === 1, 'peer gone');
  c.close();
  assert.equal(w.ev.closes, 1);
  s.close();
});

test("TCP: after the peer's shutdown(SHUT_WR), onEnd, and the answer still arrives", async () => {
  const { s, conn } = await server({ port: 0, host: '127.0.0.1' });
  const client = net.connect({ port: Number(s.address), host: '127.0.0.1', allowHalfOpen: true });
  const got: Buffer[] = [];
  let ended = false;
  client.on('data', (d) => got.push(d));
  client.on('end', () => {
    ended = true;
  });
  const c = await conn();
  const w = watch(c);
  client.end(Buffer.from('request'));
  await until(() => w.ev.ends === 1, 'onEnd');
  assert.equal(Buffer.concat(w.chunks).toString(), 'request');
  c.write(Buffer.from('answer'));
  c.close();
  await until(() => ended, 'the client sees the end');
  assert.equal(Buffer.concat(got).toString(), 'answer');
  assert.equal(w.ev.closes, 1);
  client.destroy();
  s.close();
});

test('Unix data socket: fds sent with a command are closed by the kernel, never received', async () => {
  const path = join(dir, 'data.sock');
  const { s, conn } = await server({ path });
  const before = openFds();
  const client = await connectUnix(path);
  const c = await conn();
  const w = watch(c);
  const [a, b] = socketPair('stream');
  await client.write(Buffer.from('cmd'), [a, b]);
  L.close(a);
  L.close(b);
  await until(() => w.chunks.length === 1, 'the bytes arrive');
  assert.equal(w.chunks[0]!.toString(), 'cmd');
  // this process holds: the client's fd and the accepted one, nothing more
  assert.equal(openFds(), before + 2);
  client.close();
  await until(() => w.ev.ends === 1, 'onEnd');
  c.close();
  assert.equal(w.ev.closes, 1);
  s.close();
  await sleep(10);
  assert.equal(openFds(), before - 1, 'the listening socket is closed too');
});
