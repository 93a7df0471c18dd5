// `tswtpm host --dir BASE` (issue 12): vTPMs added and removed at run time through
// BASE/host.sock, each with its own state and sockets; a QEMU-style vTPM takes its
// data channel with CMD_SET_DATAFD; a restarted host serves the same vTPMs again.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, symlinkSync } from 'node:fs';
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

async function startHost(dir: string, extra: readonly string[] = [], env?: NodeJS.ProcessEnv) {
  const proc = spawn(process.execPath, [TSWTPM_BIN, 'host', '--dir', dir, ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
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
  return { ask, stop, stderr: () => stderr, proc, exited };
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

test("tswtpm host: each vTPM logs to its own file; errors name the vTPM, in its log and the host's", async () => {
  const base = join(work.path, 'logs');
  const hostLog = join(work.path, 'host-logs.log');
  const host = await startHost(base, ['--log', `file=${hostLog},level=1`]);
  try {
    assert.equal(await host.ask('add a log-level=2'), 'ok');
    assert.equal(await host.ask('add b qemu'), 'ok');
    const t = new TpmClient({ path: join(base, 'a', 'tpm.sock') });
    try {
      assert.equal(rc(await t.transmit(tpm2.getRandom(8))), 0);
    } finally {
      await t.close();
    }
    // Level 2 dumps a's traffic into a's file: GetRandom's command code 0x17b.
    const aLog = readFileSync(join(base, 'a', 'tswtpm.log'), 'utf8');
    assert.match(aLog, /00 00 01 7b/i, `a's log has its GetRandom: ${aLog}`);
    assert.equal(readFileSync(join(base, 'b', 'tswtpm.log'), 'utf8'), '', 'b logged nothing');
    // A runtime error of b (CMD_SET_DATAFD with a character device, not a socket): in
    // b's log and, named, in the host's.
    const ctrl = new ControlClient({ path: join(base, 'b', 'ctrl.sock') });
    const devNull = openSync('/dev/null', 'r');
    try {
      await assert.rejects(ctrl.setDataFd(devNull));
    } finally {
      closeSync(devNull);
      await ctrl.close();
    }
    assert.match(readFileSync(join(base, 'b', 'tswtpm.log'), 'utf8'), /CMD_SET_DATAFD/);
    // A start-up error: c's log file is a symlink (opened O_NOFOLLOW, as swtpm does).
    mkdirSync(join(base, 'c'));
    symlinkSync('/dev/null', join(base, 'c', 'tswtpm.log'));
    assert.match(await host.ask('add c'), /^error vTPM 'c': Could not open logfile/);
    assert.equal(await host.ask('list'), 'ok a b');
  } finally {
    assert.equal(await host.stop(), 0, host.stderr());
  }
  const logText = readFileSync(hostLog, 'utf8');
  assert.match(logText, /vTPM 'a' started/);
  assert.match(logText, /^vTPM 'b': CMD_SET_DATAFD: unusable fd/m);
  assert.match(logText, /^vTPM 'c': Could not open logfile/m);
  assert.doesNotMatch(readFileSync(join(base, 'a', 'tswtpm.log'), 'utf8'), /CMD_SET_DATAFD/);
});

test('tswtpm host: the seccomp profile is installed (kill by default)', async () => {
  const base = join(work.path, 'seccomp');
  const host = await startHost(base, [], { TSWTPM_TEST_SECCOMP_HOOK: 'getpriority' });
  assert.equal(await host.ask('add a'), 'ok');
  // The test hook calls getpriority(2), which the profile denies: SIGSYS ends the host.
  host.proc.kill('SIGUSR2');
  await host.exited;
  assert.equal(host.proc.signalCode, 'SIGSYS', host.stderr());
});

test('tswtpm --help names host; tswtpm host --help lists its options', () => {
  const top = spawnSync(process.execPath, [TSWTPM_BIN, '--help'], { encoding: 'utf8' });
  assert.equal(top.status, 0);
  assert.match(top.stdout, /^ {7}tswtpm host --dir <dir> \[options\]$/m);
  const h = spawnSync(process.execPath, [TSWTPM_BIN, 'host', '--help'], { encoding: 'utf8' });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /^Usage: tswtpm host --dir <dir> \[options\]/);
  for (const o of ['--dir', '--log', '--vtpm-log', '--seccomp', '-h|--help']) {
    assert.match(h.stdout, new RegExp(`^${o.replace('|', '\\|')} `, 'm'), o);
  }
});
