// transport/poll.ts: every watched fd in one epoll set, libuv watching only that set.
// Real sockets: the callers rely on uv_poll's meaning (level-triggered, an error
// condition reported as -EBADF, nothing delivered to a watch stopped meanwhile), and an
// idle process must still exit on its own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../../src/transport/libc.js';
import { closePoll, startPoll } from '../../src/transport/poll.js';

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));
const pair = (): [number, number] => {
  const [a, b] = L.socketpair(L.SOCK_STREAM);
  L.setNonBlocking(a);
  L.setNonBlocking(b);
  return [a, b];
};
type Handle = ReturnType<typeof startPoll>;
/** (Re)starts `h` for `opts`; returns every status and event reported within a tick (it stops after the first). */
async function firstEvents(h: Handle, opts: Parameters<Handle['start']>[0]) {
  const got: { status: number; readable: boolean; writable: boolean }[] = [];
  h.start(opts, (status, ev) => {
    got.push({ status, ...ev });
    h.stop();
  });
  await tick();
  return got;
}

test('level-triggered: an unread fd is reported again on every loop turn', async () => {
  const [a, b] = pair();
  let calls = 0;
  const h = startPoll(a, { readable: true }, (status, ev) => {
    assert.equal(status, 0);
    assert.deepEqual({ ...ev }, { readable: true, writable: false });
    calls++;
  });
  L.send(b, Buffer.from('x'), L.MSG_NOSIGNAL);
  await tick(50);
  closePoll(h);
  assert.ok(calls >= 2, `reported ${calls} times`);
  L.close(a);
  L.close(b);
});

test('a watch stopped by an earlier callback of the same batch gets nothing', async () => {
  const [a1, b1] = pair();
  const [a2, b2] = pair();
  const seen: number[] = [];
  const handles: ReturnType<typeof startPoll>[] = [];
  const cb = (i: number) => () => {
    seen.push(i);
    // The first one called stops both: the other's event is in the same epoll_wait.
    for (const h of handles) h.stop();
  };
  handles.push(startPoll(a1, { readable: true }, cb(1)));
  handles.push(startPoll(a2, { readable: true }, cb(2)));
  L.send(b1, Buffer.from('x'), L.MSG_NOSIGNAL);
  L.send(b2, Buffer.from('y'), L.MSG_NOSIGNAL);
  await tick(50);
  assert.equal(seen.length, 1, `callbacks: ${seen.join(',')}`);
  // Restarted, it reports the bytes still waiting.
  assert.deepEqual(await firstEvents(handles[1]!, { readable: true }), [
    { status: 0, readable: true, writable: false },
  ]);
  for (const h of handles) closePoll(h);
  for (const fd of [a1, b1, a2, b2]) L.close(fd);
});

test('writable and readable are reported as asked, hang-up as the events watched', async () => {
  const [a, b] = pair();
  const h = startPoll(a, {}, () => {});
  assert.deepEqual(await firstEvents(h, { writable: true }), [
    { status: 0, readable: false, writable: true },
  ]);
  L.close(b); // hang-up, nothing unread on either side: no error condition
  assert.deepEqual(await firstEvents(h, { readable: true }), [
    { status: 0, readable: true, writable: false },
  ]);
  closePoll(h);
  L.close(a);
});

test('an error condition stops the watch and reports -EBADF, as uv_poll does', async () => {
  const [a, b] = pair();
  // b closes with bytes unread: the kernel sets ECONNRESET on a (EPOLLERR).
  L.send(a, Buffer.from('unread'), L.MSG_NOSIGNAL);
  L.close(b);
  const got: number[] = [];
  const h = startPoll(a, { readable: true }, (status) => got.push(status));
  await tick(50);
  assert.deepEqual(got, [-9]);
  closePoll(h);
  L.close(a);
});

test('a process whose watches are all closed exits by itself', () => {
  const poll = fileURLToPath(new URL('../../src/transport/poll.js', import.meta.url));
  const libc = fileURLToPath(new URL('../../src/transport/libc.js', import.meta.url));
  const script = `
    const { startPoll, closePoll } = await import(${JSON.stringify(poll)});
    const L = await import(${JSON.stringify(libc)});
    const [a, b] = L.socketpair(L.SOCK_STREAM);
    const h = startPoll(a, { readable: true }, () => {});
    setTimeout(() => { closePoll(h); L.close(a); L.close(b); }, 20);
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    timeout: 10_000,
    encoding: 'utf8',
  });
  assert.equal(r.error, undefined, 'the process did not exit by itself');
  assert.equal(r.status, 0, r.stderr);
});

test('a watch whose fd was closed and reused behind its back is added anew', async () => {
  const [a, b] = pair();
  const h = startPoll(a, { readable: true }, () => {});
  // Closed without closePoll(): the kernel drops the epoll entry with the file.
  L.close(a);
  L.close(b);
  const [c, d] = pair();
  try {
    assert.equal(c, a, 'the lowest free fd number is reused');
    assert.deepEqual(await firstEvents(h, { readable: true, writable: true }), [
      { status: 0, readable: false, writable: true },
    ]);
  } finally {
    closePoll(h);
    L.close(c);
    L.close(d);
  }
});
