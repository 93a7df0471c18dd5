// The Conn/ConnServer adapters over real AF_UNIX sockets.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Conn } from '../../src/transport/conn.js';
import { FdChannel, closeFd, socketPair } from '../../src/transport/fd-channel.js';
import { fdConn, unixConnServer } from '../../src/transport/unix-conn.js';
import { connectUnix } from '../../src/transport/unix-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('unixConnServer: chunk + fds, SET_DATAFD-style hand-over to fdConn on a datagram fd', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tswtpm-conn-'));
  const server = unixConnServer({ path: join(dir, 'ctrl.sock') });
  const log: string[] = [];
  let data: Conn | undefined;
  server.onConn = (conn) => {
    log.push(`conn ${conn.peer}`);
    conn.onData = (chunk, fds) => {
      log.push(`ctrl ${chunk.toString('hex')} fds=${fds.length}`);
      const [fd] = fds;
      if (fd === undefined) return;
      data = fdConn(fd, { bufferSize: 4105 });
      data.onData = (cmd) => {
        log.push(`data ${cmd}`);
        data?.write(Buffer.from(`re:${cmd}`));
      };
      data.onClose = () => log.push('data closed');
      conn.write(Buffer.from('00000000', 'hex'));
    };
    conn.onClose = () => log.push('ctrl closed');
  };
  server.start();

  const c = await connectUnix(join(dir, 'ctrl.sock'));
  const [mine, theirs] = socketPair('dgram');
  await c.write(Buffer.from('00000010', 'hex'), [theirs]);
  closeFd(theirs);
  assert.equal((await c.read(1000))?.data.toString('hex'), '00000000');
  const peer = new FdChannel(mine);
  await peer.write(Buffer.from('one'));
  await peer.write(Buffer.from('two'));
  assert.equal((await peer.read(1000))?.data.toString(), 're:one');
  assert.equal((await peer.read(1000))?.data.toString(), 're:two');

  data?.pause();
  await peer.write(Buffer.from('held'));
  await sleep(50);
  assert.equal(log.includes('data held'), false);
  data?.resume();
  assert.equal((await peer.read(1000))?.data.toString(), 're:held');

  c.close();
  await sleep(50);
  data?.close();
  peer.close();
  server.close();
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(log, [
    `conn unix ${join(dir, 'ctrl.sock')}`,
    'ctrl 00000010 fds=1',
    'data one',
    'data two',
    'data held',
    'ctrl closed',
    'data closed',
  ]);
});
