// `tswtpm host --dir BASE` (issue 12): vTPMs added and removed at run time through
// BASE/host.sock, each with its own state and sockets; a QEMU-style vTPM takes its
// data channel with CMD_SET_DATAFD; a restarted host serves the same vTPMs again.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlClient, TpmClient, tpm2 } from '../../src/index.js';
import { closeFd, socketPair } from '../../src/transport/fd-channel.js';
import { createEkRsa2 } from '../helpers/ek.js';
import { TSWTPM_BIN, tempDir } from '../helpers/procs.js';

const rc = (r: Uint8Array) => Buffer.from(r).readUInt32BE(6);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const work = tempDir();
after(() => work.remove());

async function startHost(dir: string) {
  const proc = spawn(process.execPath, [TSWTPM_BIN, 'host', '--dir', dir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  const path = join(dir, 'host.sock');
  let sock: net.Socket | undefined;
  for (let i = 0; sock === undefined; i++) {
    if (proc.exitCode !== null) throw new Error(`host exited: ${stderr}`);
    sock = await new Promise<net.Socket | undefined>((r) => {
      const s = net.connect(path);
      s.once('connect', () => r(s));
      s.once('error', () => r(undefined));
    });
    if (sock === undefined) await sleep(20);
    assert.ok(i < 500, `host.sock never answered: ${stderr}`);
  }
  let buf = '';
  const waiting: ((line: string) => void)[] = [];
  sock.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let n = buf.indexOf('\n'); n >= 0; n = buf.indexOf('\n')) {
      const line = buf.slice(0, n);
      buf = buf.slice(n + 1);
      waiting.shift()?.(line);
    }
  });
  const ask = (line: string) =>
    new Promise<string>((r) => {
      waiting.push(r);
      sock.write(`${line}\n`);
    });
  const stop = async () => {
    sock.destroy();
    proc.kill('SIGTERM');
    return exited;
  };
  return { ask, stop, stderr: () => stderr };
}

async function ek(dataPath: string): Promise<string> {
  const t = new TpmClient({ path: dataPath });
  try {
    const r = await t.transmit(createEkRsa2());
    assert.equal(rc(r), 0);
    await t.transmit(tpm2.flushContext(tpm2.parseCreatePrimaryRsa(r).handle));
    return tpm2.parseCreatePrimaryRsa(r).modulus.toString('hex');
  } finally {
    await t.close();
  }
}

test('tswtpm host: add, list, remove at run time; state kept; restart serves them again', async () => {
  const base = work.path;
  const host = await startHost(base);
  let stopped = false;
  let ekA = '';
  try {
    assert.equal(await host.ask('add a'), 'ok');
    assert.equal(await host.ask('add b'), 'ok');
    assert.match(await host.ask('add a'), /^error .*already running/);
    assert.match(await host.ask('add ../x'), /^error invalid vTPM name/);
    assert.equal(await host.ask('list'), 'ok a b');
    ekA = await ek(join(base, 'a', 'tpm.sock'));
    const ekB = await ek(join(base, 'b', 'tpm.sock'));
    assert.notEqual(ekA, ekB, 'two vTPMs, two endorsement seeds');
    assert.equal(await host.ask('remove a'), 'ok');
    assert.equal(existsSync(join(base, 'a', 'tpm.sock')), false, "a's sockets are gone");
    assert.equal(await host.ask('list'), 'ok b');
    assert.equal(await ek(join(base, 'b', 'tpm.sock')), ekB, 'b keeps serving');
    assert.equal(await host.ask('add a'), 'ok');
    assert.equal(await ek(join(base, 'a', 'tpm.sock')), ekA, "a's state was kept");

    // A QEMU-style vTPM: control socket only, CMD_SET_DATAFD, CMD_INIT.
    assert.equal(await host.ask('add q qemu'), 'ok');
    assert.equal(existsSync(join(base, 'q', 'tpm.sock')), false);
    const ctrl = new ControlClient({ path: join(base, 'q', 'ctrl.sock') });
    const [mine, theirs] = socketPair('stream');
    const tpm = new TpmClient({ fd: mine });
    try {
      await ctrl.setDataFd(theirs);
      closeFd(theirs);
      await ctrl.init();
      assert.equal(rc(await tpm.transmit(tpm2.startup())), 0);
      assert.equal(rc(await tpm.transmit(tpm2.getRandom(8))), 0);
      // The fd went to q only: a's control channel still refuses one (it has tpm.sock).
      const [x, y] = socketPair('stream');
      const ctrlA = new ControlClient({ path: join(base, 'a', 'ctrl.sock') });
      await assert.rejects(ctrlA.setDataFd(y), /0x1f|TPM_IOERROR/);
      await ctrlA.close();
      closeFd(x);
      closeFd(y);
    } finally {
      await tpm.close();
      await ctrl.close();
    }
    assert.equal(await host.ask('list'), 'ok a b q');
    assert.equal(await host.stop(), 0, `host exits cleanly: ${host.stderr()}`);
    stopped = true;
  } finally {
    if (!stopped) await host.stop();
  }
  // A new host process serves every vTPM it finds again, with the same state.
  const again = await startHost(base);
  try {
    assert.equal(await again.ask('list'), 'ok a b q');
    assert.equal(await ek(join(base, 'a', 'tpm.sock')), ekA);
  } finally {
    assert.equal(await again.stop(), 0);
  }
});
