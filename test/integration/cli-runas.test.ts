import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ControlClient } from '../../src/client/index.js';
import { TSWTPM_BIN, tempDir, waitForControl } from '../helpers/procs.js';
import { haveSwtpm } from '../helpers/spawn-tswtpm.js';

// `-r/--runas USER` as swtpm's change_process_owner(): initgroups() keeps the user's
// supplementary groups, then setgid/setuid; socket and chardev change the owner before
// they open the log, the sockets, the pid file or the state. Checked in
// /proc/PID/status of the serving process, side by side with swtpm 0.7.1.

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root to create a user and to change the process owner';
const work = tempDir();
const tag = `${process.pid % 100000}`;
const USER = `tswtpmu${tag}`;
const EXTRA = `tswtpmg${tag}`;

before(() => {
  if (!isRoot) return;
  chmodSync(work.path, 0o755);
  sh('groupadd', [EXTRA]);
  sh('useradd', ['-M', '-s', '/usr/sbin/nologin', '-G', EXTRA, USER]);
});
after(() => {
  if (isRoot) {
    spawnSync('userdel', [USER]);
    spawnSync('groupdel', [EXTRA]);
  }
  work.remove();
});

function sh(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${file} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Uid, Gid and Groups lines of /proc/PID/status. */
function ids(pid: number): { uid: string; gid: string; groups: string[] } {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(st)?.[1]?.trim() ?? '';
  return {
    uid: line('Uid'),
    gid: line('Gid'),
    groups: line('Groups').split(/\s+/).filter(Boolean).sort(),
  };
}

/** Starts PROGRAM IFACE ... --runas USER, waits until the control socket answers. */
async function start(
  program: 'tswtpm' | 'swtpm',
  iface: 'socket' | 'chardev',
  name: string,
  extra: string[] = [],
): Promise<{ child: ChildProcess; ctrl: string; dir: string }> {
  const dir = join(work.path, name);
  mkdirSync(dir, { mode: 0o777 });
  chmodSync(dir, 0o777);
  const ctrl = join(dir, 'ctrl');
  const args = [iface, '--tpm2', '--tpmstate', `dir=${dir}`, '--runas', USER];
  args.push('--ctrl', `type=unixio,path=${ctrl}`, '--flags', 'not-need-init,startup-clear');
  if (iface === 'chardev') args.push('--chardev', '/dev/ptmx');
  else args.push('--server', `type=unixio,path=${join(dir, 'tpm')}`);
  const [file, pre] = program === 'swtpm' ? ['swtpm', []] : [process.execPath, [TSWTPM_BIN]];
  const child = spawn(file, [...pre, ...args, ...extra], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await waitForControl(ctrl, child);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { child, ctrl, dir };
}

async function stop(t: { child: ChildProcess; ctrl: string }): Promise<void> {
  if (t.child.exitCode !== null || t.child.signalCode !== null) return;
  const exited = new Promise((r) => t.child.once('exit', r));
  await new ControlClient({ path: t.ctrl }, { timeoutMs: 5000 })
    .shutdown()
    .catch(() => t.child.kill('SIGKILL'));
  await exited;
}

for (const iface of ['socket', 'chardev'] as const) {
  test(`${iface} --runas USER: uid, gid and supplementary groups as swtpm`, { skip }, async () => {
    const uid = sh('id', ['-u', USER]);
    const gid = sh('id', ['-g', USER]);
    const extra = sh('getent', ['group', EXTRA]).split(':')[2]!;
    const want = {
      uid: [uid, uid, uid, uid].join('\t'),
      gid: [gid, gid, gid, gid].join('\t'),
      groups: [gid, extra].sort(),
    };
    const ours = await start('tswtpm', iface, `${iface}-ours`);
    try {
      assert.deepEqual(ids(ours.child.pid!), want);
      // The state, the socket and the lock file were made by USER.
      for (const f of ['tpm2-00.permall', 'ctrl', '.lock']) {
        assert.equal(String(statSync(join(ours.dir, f)).uid), uid, f);
      }
    } finally {
      await stop(ours);
    }
    if (!haveSwtpm) return;
    const theirs = await start('swtpm', iface, `${iface}-theirs`);
    try {
      assert.deepEqual(ids(theirs.child.pid!), want);
    } finally {
      await stop(theirs);
    }
  });
}

test('--runas changes the owner before the log is opened (as swtpm)', { skip }, async () => {
  const dir = join(work.path, 'log');
  mkdirSync(dir, { mode: 0o700 }); // only root may create files here
  const args = ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--runas', USER];
  args.push('--log', `file=${join(dir, 'log')}`, '--ctrl', 'type=tcp,port=0');
  const ours = spawnSync(process.execPath, [TSWTPM_BIN, ...args], { encoding: 'utf8' });
  assert.equal(ours.status, 1);
  assert.equal(
    ours.stderr,
    `tswtpm: Could not open logfile '${join(dir, 'log')}': Permission denied\n`,
  );
  assert.equal(existsSync(join(dir, 'log')), false);
  if (haveSwtpm) {
    // swtpm 0.7.1 exits 1 without a message (docs/compat.md).
    assert.equal(spawnSync('swtpm', args).status, 1);
  }
});

test('--runas UID (a number): that uid, gid = uid, no other group', { skip }, async () => {
  const dir = join(work.path, 'num');
  mkdirSync(dir, { mode: 0o777 });
  chmodSync(dir, 0o777);
  const ctrl = join(dir, 'ctrl');
  const child = spawn(
    process.execPath,
    [TSWTPM_BIN, 'socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--runas', '54321'].concat([
      '--ctrl',
      `type=unixio,path=${ctrl}`,
    ]),
    { stdio: 'ignore' },
  );
  await waitForControl(ctrl, child);
  try {
    assert.deepEqual(ids(child.pid!), {
      uid: '54321\t54321\t54321\t54321',
      gid: '54321\t54321\t54321\t54321',
      groups: ['54321'],
    });
  } finally {
    await stop({ child, ctrl });
  }
});
