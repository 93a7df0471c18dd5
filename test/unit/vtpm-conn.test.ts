// vtpmProxyConn on a FIFO (the host has no vTPM proxy; the QEMU guest test serves a real
// one): whole reads after POLLIN, close() releases the fd, and a process whose
// connection waits for a command still exits, where a read() left pending in libuv's
// thread pool holds process.exit() until the next command arrives.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { vtpmProxyConn } from '../../src/transport/vtpm-conn.js';
import { run } from '../helpers/procs.js';

const dir = mkdtempSync(join(tmpdir(), 'vtpm-conn-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const fifo = (name: string) => {
  const p = join(dir, name);
  execFileSync('mkfifo', [p]);
  return p;
};

test('one read per queued command; close() releases the fd', async () => {
  const path = fifo('a');
  const fd = openSync(path, 'r+');
  const writer = openSync(path, 'w');
  const conn = vtpmProxyConn(fd);
  const chunks: string[] = [];
  let got!: () => void;
  const one = () =>
    new Promise<void>((r) => {
      got = r;
    });
  conn.onData = (c) => {
    chunks.push(c.toString());
    got();
  };
  // The second command is written once the first was read: written together (a 50 ms
  // pause was not enough on a loaded machine) they are one read of a FIFO, which the
  // kernel's proxy device never gives.
  let next = one();
  writeSync(writer, 'cmd1');
  await next;
  next = one();
  writeSync(writer, 'cmd2');
  await next;
  assert.deepEqual(chunks, ['cmd1', 'cmd2']);
  let closes = 0;
  conn.onClose = () => closes++;
  conn.close();
  conn.close();
  assert.equal(closes, 1);
  // The fd goes once the poll() in flight returns.
  for (let i = 0; i < 100; i++) {
    try {
      fstatSync(fd);
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.throws(() => fstatSync(fd), /EBADF/);
  closeSync(writer);
});

const CHILD = `
const { openSync } = await import('node:fs');
const mod = await import(process.argv[1]);
const fd = openSync(process.argv[2], 'r+');
const conn = process.argv[3] === 'vtpm' ? mod.vtpmProxyConn(fd) : mod.charDeviceConn(fd);
conn.onData = () => {};
setTimeout(() => process.exit(7), 300);
`;

test('process.exit() is not held by a connection waiting for a command', async () => {
  const url = new URL('../../src/transport/vtpm-conn.js', import.meta.url);
  const r = await run(
    process.execPath,
    ['--input-type=module', '-e', CHILD, fileURLToPath(url), fifo('b'), 'vtpm'],
    { timeoutMs: 20_000 },
  );
  assert.equal(r.code, 7, r.stderr);
});
