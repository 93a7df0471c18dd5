import assert from 'node:assert/strict';
import { type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlClient, TpmClient } from '../../src/client/index.js';
import { TSWTPM_BIN, startTcp, tempDir, waitForControl } from '../helpers/procs.js';
import { haveSwtpm } from '../helpers/spawn-tswtpm.js';
import { worldReadableCopy } from '../helpers/world-readable.js';

// Issue 10: a TPM process that local users cannot open up (SIGUSR1, --inspect, ptrace),
// that follows no symlink for its log and pid file, and that exits 1 on any start-up
// error instead of hanging. Messages and exit codes are compared with swtpm 0.7.1.

const work = tempDir();
after(() => work.remove());
chmodSync(work.path, 0o755); // processes running as nobody must get in
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const GET_RANDOM = Buffer.from('80010000000c0000017b0008', 'hex');

interface Ended {
  readonly code: number | null;
  /** Set when the process had to be killed: it hung instead of exiting. */
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** Runs `tswtpm socket ...` or `swtpm socket ...`; a process still alive after 20 s is killed. */
function runSocket(program: 'tswtpm' | 'swtpm', args: string[], opts: SpawnOptions = {}) {
  const [file, pre] = program === 'swtpm' ? ['swtpm', []] : [process.execPath, [TSWTPM_BIN]];
  const child = spawn(file, [...pre, 'socket', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...opts,
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
  return new Promise<Ended>((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    }),
  );
}

/** A writable state directory for one run (any user). */
function stateDir(name: string): string {
  const d = join(work.path, name);
  mkdirSync(d, { recursive: true, mode: 0o777 });
  chmodSync(d, 0o777);
  return d;
}

const base = (name: string) => ['--tpm2', '--tpmstate', `dir=${stateDir(name)}`];
const same = (ours: string, theirs: string) =>
  assert.equal(ours.replace(/^tswtpm: /gm, ''), theirs.replace(/^swtpm: /gm, ''));

test('SIGUSR1 opens no inspector and the TPM keeps serving', async () => {
  const srv = await startTcp('tswtpm', [...base('usr1'), '--flags', 'not-need-init,startup-clear']);
  try {
    srv.proc.kill('SIGUSR1');
    // Node starts the inspector from its signal watchdog; a round trip on each channel
    // afterwards shows the process still serves (it is neither stopped nor killed).
    const ctl = new ControlClient({ port: srv.ctrlPort });
    assert.equal((await ctl.getCapability()).mask, 0x1ffff);
    const tpm = new TpmClient({ port: srv.port });
    assert.equal(Buffer.from(await tpm.transmit(GET_RANDOM)).readUInt32BE(6), 0);
    await tpm.close();
    srv.proc.kill('SIGUSR1');
    assert.equal((await ctl.getCapability()).mask, 0x1ffff);
    // Node announces an inspector (or its failure to bind 9229) on stderr.
    assert.doesNotMatch(srv.stderr(), /Debugger listening|inspector/i);
    assert.equal(await listensOn9229(srv.proc.pid!), false, 'nothing of ours listens on 9229');
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

/** Whether `pid` has a listening TCP socket on port 9229 (from /proc, needs root). */
async function listensOn9229(pid: number): Promise<boolean> {
  const r = spawnSync('ss', ['-Hltnp', 'sport = :9229'], { encoding: 'utf8' });
  return r.stdout.includes(`pid=${pid},`);
}

test('an inspector requested through NODE_OPTIONS or the node command line is refused', async () => {
  const env = { ...process.env, NODE_OPTIONS: '--inspect=127.0.0.1:0' };
  const a = await runSocket('tswtpm', [...base('insp'), '--ctrl', 'type=tcp,port=0'], { env });
  assert.equal(a.signal, null, 'exits by itself');
  assert.equal(a.code, 1);
  assert.match(a.stderr, /^tswtpm: Error: refusing to run the TPM with a debugger enabled/m);
  const child = spawn(process.execPath, ['--inspect-port=0', TSWTPM_BIN, 'socket', '--tpm2'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => {
    err += b.toString();
  });
  assert.equal(await new Promise((r) => child.once('close', r)), 1);
  assert.match(err, /refusing to run the TPM with a debugger enabled \(--inspect-port=0\)/);
});

test('an inspector opened before main() (by preloaded code) is refused, with or without --pending-deprecation', async () => {
  // The check reads Node's inspector binding; with --pending-deprecation it uses
  // node:inspector instead (process.binding() would print a deprecation warning).
  const preload = join(work.path, 'open-inspector.cjs');
  writeFileSync(preload, "require('node:inspector').open(0, '127.0.0.1');\n");
  for (const extra of [[], ['--pending-deprecation']]) {
    const child = spawn(
      process.execPath,
      [...extra, '--require', preload, TSWTPM_BIN, 'socket', ...base('preload')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr?.on('data', (b: Buffer) => {
      err += b.toString();
    });
    assert.equal(await new Promise((r) => child.once('close', r)), 1, err);
    assert.match(
      err,
      /refusing to run the TPM with a debugger enabled \(an inspector is listening at ws:\/\/127\.0\.0\.1:\d+\//,
    );
    assert.doesNotMatch(err, /DeprecationWarning/, extra.join(' '));
  }
});

test(
  'a process of the same uid cannot read the TPM process (not dumpable)',
  { skip: !isRoot && 'needs root to run both as nobody' },
  async () => {
    const dir = stateDir('dump');
    // nobody runs tswtpm from a copy it can read (the checkout may sit in a 0700 directory).
    const shared = worldReadableCopy();
    const run = async (program: 'tswtpm' | 'swtpm') => {
      const ctrl = join(dir, `${program}.ctrl`);
      const args = [...base(`dump-${program}`), '--ctrl', `type=unixio,path=${ctrl}`];
      const [file, argv] = cmd(program, args, shared.bin);
      const child = spawn(file, argv, { stdio: 'ignore', uid: NOBODY, gid: NOBODY });
      try {
        await waitForControl(ctrl, child);
        const peek = spawnSync('ls', [`/proc/${child.pid}/fd`], { uid: NOBODY, gid: NOBODY });
        return peek.status;
      } finally {
        child.kill();
      }
    };
    try {
      assert.notEqual(await run('tswtpm'), 0, 'ls /proc/PID/fd as the same uid fails');
      // docs/compat.md: swtpm 0.7.1 stays dumpable (its fds are visible to the same uid).
      if (haveSwtpm) assert.equal(await run('swtpm'), 0);
    } finally {
      shared.remove();
    }
  },
);

function cmd(program: 'tswtpm' | 'swtpm', args: string[], bin = TSWTPM_BIN): [string, string[]] {
  return program === 'swtpm'
    ? ['swtpm', ['socket', ...args]]
    : [process.execPath, [bin, 'socket', ...args]];
}

for (const daemon of [false, true]) {
  const d = daemon ? ['-d'] : [];
  test(`--log file= and --pid file= never follow a symlink${daemon ? ' (-d)' : ''}`, async () => {
    for (const program of haveSwtpm ? (['tswtpm', 'swtpm'] as const) : (['tswtpm'] as const)) {
      const dir = stateDir(`link-${program}-${daemon}`);
      const target = join(dir, 'target');
      symlinkSync(target, join(dir, 'log'));
      symlinkSync(target, join(dir, 'pid'));
      const ctl = ['--ctrl', `type=unixio,path=${join(dir, 'c')}`, '--flags', 'not-need-init'];
      const log = await runSocket(program, [
        ...base(`l-${program}-${daemon}`),
        ...ctl,
        '--log',
        `file=${join(dir, 'log')}`,
        ...d,
      ]);
      const pid = await runSocket(program, [
        ...base(`p-${program}-${daemon}`),
        ...ctl,
        '--pid',
        `file=${join(dir, 'pid')}`,
        ...d,
      ]);
      assert.equal(existsSync(target), false, `${program} wrote through a symlink`);
      for (const r of [log, pid])
        assert.deepEqual([r.code, r.signal], [1, null], `${program}: ${r.stderr}`);
      const msg = `Could not open pidfile ${join(dir, 'pid')} : Too many levels of symbolic links\n`;
      assert.equal(pid.stderr, `${program}: ${msg}`);
      // swtpm 0.7.1 exits 1 without a word when the log cannot be opened (docs/compat.md).
      if (program === 'tswtpm') {
        assert.equal(
          log.stderr,
          `tswtpm: Could not open logfile '${join(dir, 'log')}': Too many levels of symbolic links\n`,
        );
      }
    }
  });

  test(`start-up errors after a listen() exit 1 with swtpm's message${daemon ? ' (-d)' : ''}`, async () => {
    const dir = stateDir(`sun-${daemon}`);
    const long = join(dir, 'x'.repeat(107 - dir.length)); // 108 bytes: no room for the NUL
    assert.equal(Buffer.byteLength(long), 108);
    const cases = [
      ['--server', `type=unixio,path=${long}`, '--ctrl', `type=unixio,path=${join(dir, 'c')}`],
      ['--ctrl', `type=unixio,path=${long}`, '--server', `type=unixio,path=${join(dir, 's')}`],
      ['--ctrl', 'type=tcp,port=0', '--server', `type=unixio,path=${long}`],
    ];
    for (const c of cases) {
      const args = [...base(`sun-${daemon}-st`), '--flags', 'not-need-init', ...c, ...d];
      const ours = await runSocket('tswtpm', args);
      assert.deepEqual([ours.code, ours.signal], [1, null], ours.stderr);
      assert.equal(ours.stderr, 'tswtpm: Path for UnioIO socket is too long\n');
      if (haveSwtpm) same(ours.stderr, (await runSocket('swtpm', args)).stderr);
    }
    assert.equal(existsSync(long.slice(0, 107)), false, 'no socket under a truncated name');
  });

  test(
    `a socket whose chown fails: exit 1 with swtpm's message${daemon ? ' (-d)' : ''}`,
    { skip: !isRoot && 'needs root for --runas' },
    async () => {
      const dir = stateDir(`chown-${daemon}`);
      for (const program of haveSwtpm ? (['tswtpm', 'swtpm'] as const) : (['tswtpm'] as const)) {
        // --runas comes first (swtpm's order): the socket is made by nobody, who cannot
        // give it to root.
        const s = join(dir, `${program}.sock`);
        const args = [
          ...base(`chown-${daemon}-${program}`),
          '--runas',
          'nobody',
          '--flags',
          'not-need-init',
        ];
        args.push('--ctrl', 'type=tcp,port=0', '--server', `type=unixio,path=${s},uid=0`, ...d);
        const r = await runSocket(program, args);
        assert.deepEqual([r.code, r.signal], [1, null], r.stderr);
        assert.equal(
          r.stderr,
          `${program}: Could not change ownership of UnixIO socket to 0:4294967295 Operation not permitted\n`,
        );
      }
    },
  );
}

test('-d relays errors of the daemon before it is ready, with the exit code', async () => {
  const r = await runSocket('tswtpm', [...base('d-err'), '--runas', 'no-such-user-x', '-d']);
  assert.deepEqual(
    [r.code, r.stderr],
    [1, "tswtpm: Error: User 'no-such-user-x' does not exist.\n"],
  );
  if (haveSwtpm) {
    const s = await runSocket('swtpm', [...base('d-err'), '--runas', 'no-such-user-x', '-d']);
    assert.equal(s.code, 1);
    same(r.stderr, s.stderr);
  }
});
