// `-R/--chroot DIR` (issue 11; swtpm 0.8+, so Debian's 0.7.1 rejects the option). The
// process confines itself to DIR before it opens anything: log, pid file, sockets and
// state are resolved inside DIR, and everything it loads lazily (libtpms, OpenSSL's
// config, koffi, Node modules) must already be in memory. The same TPM workload runs
// against swtpm 0.7.1 without a chroot and must give the same results.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ControlClient, TpmClient } from '../../src/client/index.js';
import { getRandom2, parseResponse } from '../../src/protocol/tpm/commands.js';
import { assertFilter, readBack, stateWorkload, waitForFilter } from '../helpers/sandbox.js';
import { TSWTPM_BIN, haveSwtpm, run, sleep, tempDir } from '../helpers/spawn-tswtpm.js';
import { worldReadableCopy } from '../helpers/world-readable.js';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'chroot(2) needs root (CAP_SYS_CHROOT)';
/** The CLI's modules, not the bundle: every lazily imported module must preload too. */
const MODULES = fileURLToPath(new URL('../../src/cli/server/entry.js', import.meta.url));

type From = 'bundle' | 'modules' | 'swtpm';

/** A server process with its stderr and exit collected. */
class Server {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  constructor(from: From, args: readonly string[]) {
    const script = `const { main } = await import(${JSON.stringify(MODULES)}); main(process.argv.slice(1));`;
    const [file, pre] =
      from === 'swtpm'
        ? ['swtpm', []]
        : from === 'bundle'
          ? [process.execPath, [TSWTPM_BIN]]
          : [process.execPath, ['--input-type=module', '-e', script, '--']];
    this.child = spawn(file, [...pre, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.on('data', (b: Buffer) => {
      this.stderr += b.toString();
    });
    this.exited = new Promise((r) =>
      this.child.once('close', (code, signal) => r({ code, signal })),
    );
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}

async function waitFor(what: () => boolean | Promise<boolean>, s: Server): Promise<void> {
  for (let i = 0; i < 750 && s.running && !(await what()); i++) await sleep(20);
  assert.ok(await what(), `not ready; stderr: ${s.stderr}`);
}

interface Layout {
  /** What the server is told (paths inside the chroot, or outside for swtpm). */
  readonly base: string;
  /** The same directory seen from this test. */
  readonly outside: string;
}

/**
 * One server life: start with `flags`, run `body` against its Unix data and control
 * sockets, CMD_SHUTDOWN; returns body's result and asserts a clean exit 0.
 */
async function life<T>(
  from: From,
  chroot: readonly string[],
  dirs: Layout,
  flags: string,
  body: (tpm: TpmClient, control: ControlClient, s: Server) => Promise<T>,
): Promise<T> {
  const p = (f: string) => (dirs.base === '/' ? `/${f}` : join(dirs.base, f));
  const s = new Server(from, [
    'socket',
    ...chroot,
    '--tpm2',
    '--tpmstate',
    `dir=${p('state')}`,
    '--pid',
    `file=${p('server.pid')}`,
    '--log',
    `file=${p('server.log')},level=1`,
    '--server',
    `type=unixio,path=${p('data.sock')}`,
    '--ctrl',
    `type=unixio,path=${p('ctrl.sock')}`,
    '--flags',
    flags,
  ]);
  const ctrlPath = join(dirs.outside, 'ctrl.sock');
  const pidPath = join(dirs.outside, 'server.pid');
  const control = new ControlClient({ path: ctrlPath }, { timeoutMs: 10000 });
  const tpm = new TpmClient({ path: join(dirs.outside, 'data.sock') });
  try {
    await waitFor(() => existsSync(pidPath), s);
    await waitFor(async () => {
      try {
        await control.getCapability({ timeoutMs: 1000 });
        return true;
      } catch {
        return false;
      }
    }, s);
    assert.equal(readFileSync(pidPath, 'utf8').trim(), String(s.child.pid));
    const out = await body(tpm, control, s);
    await tpm.close();
    await control.shutdown();
    await control.close();
    const e = await s.exited;
    assert.deepEqual(e, { code: 0, signal: null }, s.stderr);
    // The pid file is removed at exit, through its path inside the chroot.
    assert.ok(!existsSync(pidPath));
    return out;
  } finally {
    await s.kill();
  }
}

/** Workload, restart, read-back; returns every TPM result code. */
async function session(from: From, chroot: (dir: string) => string[]): Promise<number[]> {
  const root = tempDir('tswtpm-chroot-');
  mkdirSync(join(root, 'state'));
  const dirs: Layout =
    from === 'swtpm' ? { base: root, outside: root } : { base: '/', outside: root };
  const args = from === 'swtpm' ? [] : chroot(root);
  const rcs = await life(from, args, dirs, 'not-need-init,startup-clear', async (tpm, _c, s) => {
    if (from !== 'swtpm') {
      const pid = s.child.pid!;
      assert.equal(readlinkSync(`/proc/${pid}/root`), root);
      await waitForFilter(pid);
      assertFilter(pid, true); // chroot and the default seccomp filter together
    }
    return stateWorkload(tpm);
  });
  assert.ok(existsSync(join(root, 'state', 'tpm2-00.permall')));
  assert.ok(existsSync(join(root, 'server.log')));
  const again = await life(from, args, dirs, 'not-need-init,startup-state', async (tpm) => [
    await readBack(tpm),
    parseResponse(await tpm.transmit(getRandom2(8))).rc,
  ]);
  return [...rcs, ...again];
}

for (const [opt, from] of [
  ['--chroot', 'bundle'],
  ['-R', 'bundle'],
  ['--chroot', 'modules'],
] as const) {
  test(
    `${opt} DIR (${from}): log, pid, sockets and state inside DIR; state writes, restart`,
    { skip },
    async () => {
      const ours = await session(from, (dir) => [opt, dir]);
      assert.deepEqual(ours, [0, 0, 0, 0, 0, 0, 0, 0]);
      if (haveSwtpm) {
        // swtpm 0.7.1 has no --chroot: the same session without one gives the same codes.
        const theirs = await session('swtpm', () => []);
        assert.deepEqual(theirs, ours);
      }
    },
  );
}

test(
  '--chroot errors: swtpm 0.8+ messages, exit 1; swtpm 0.7.1 does not know the option',
  { skip },
  async () => {
    const missing = join(tempDir(), 'missing');
    const base = ['socket', '--tpm2', '--tpmstate', 'dir=/', '--server', 'type=tcp,port=0'];
    const r = await run('tswtpm', [...base, '--chroot', missing]);
    assert.deepEqual([r.code, r.stderr], [1, 'tswtpm: chroot failed: No such file or directory\n']);
    // Without CAP_SYS_CHROOT (as an unprivileged user), from a copy that user can read
    // (the checkout may sit in a 0700 directory):
    const dir = tempDir();
    chmodSync(dir, 0o755); // searchable: the failure must be the missing privilege
    const shared = worldReadableCopy();
    const un = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        shared.bin,
        ...base,
        '-R',
        dir,
      ],
      { encoding: 'utf8', timeout: 20000 },
    );
    shared.remove();
    assert.deepEqual(
      [un.status, un.stderr],
      [1, 'tswtpm: chroot failed: Operation not permitted\n'],
    );
    if (haveSwtpm) {
      const theirs = await run('swtpm', [...base, '--chroot', dir]);
      assert.match(theirs.stderr, /unrecognized option '--chroot'/);
    }
  },
);

test(
  '-d with --chroot: the launcher opens nothing; the child logs and writes its pid inside DIR',
  { skip },
  async () => {
    const root = tempDir('tswtpm-chroot-');
    const cwd = tempDir();
    mkdirSync(join(root, 'state'));
    const r = spawnSync(
      process.execPath,
      [
        TSWTPM_BIN,
        'socket',
        '-d',
        '-R',
        root,
        '--tpm2',
        '--tpmstate',
        'dir=state',
        '--log',
        'file=server.log,level=1',
        '--pid',
        'file=/server.pid',
        '--server',
        'type=unixio,path=/data.sock',
        '--ctrl',
        'type=unixio,path=/ctrl.sock',
        '--flags',
        'not-need-init,startup-clear',
      ],
      { cwd, encoding: 'utf8', timeout: 30000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const pid = Number(readFileSync(join(root, 'server.pid'), 'utf8'));
    try {
      // Relative paths are relative to DIR (the child's cwd after chdir("/")).
      assert.ok(existsSync(join(root, 'server.log')));
      assert.ok(existsSync(join(root, 'state', 'tpm2-00.permall')));
      assert.ok(!existsSync(join(cwd, 'server.log')), 'the launcher created the log file');
      const control = new ControlClient({ path: join(root, 'ctrl.sock') });
      await control.shutdown();
      await control.close();
    } finally {
      for (let i = 0; i < 250 && existsSync(`/proc/${pid}`); i++) await sleep(20);
      if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
    }
  },
);
