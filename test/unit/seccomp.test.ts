// The seccomp deny list resolves, on x86_64, to the 141 syscalls swtpm 0.8 … master
// denies (runtime-features.md §1.2: 0.7.1's 135, verified from its loaded BPF, plus
// fsopen, fsconfig, fspick, mount_setattr, open_tree, quotactl_fd).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { seccompAction } from '../../src/cli/server/sandbox-setup.js';
import { compileFilters, readCompiledFilters } from '../../src/sandbox/seccomp-compiled.js';
import { DENIED_SYSCALLS, deniedNumbers, loadLibseccomp } from '../../src/sandbox/seccomp.js';

const skip = arch() === 'x64' ? false : 'syscall numbers are checked for x86_64';

test(
  'x86_64: 141 distinct syscalls; only the 32-bit *_time64 names do not resolve',
  { skip },
  () => {
    const lib = loadLibseccomp();
    const numbers = deniedNumbers(lib);
    assert.equal(numbers.length, 141);
    assert.equal(new Set(numbers).size, 141);
    const unresolved = DENIED_SYSCALLS.filter((name) => lib.resolve(name) < 0);
    assert.deepEqual(unresolved, ['clock_settime64', 'timer_settime64', 'timerfd_settime64']);
    // Spot checks against the x86_64 syscall table (asm/unistd_64.h).
    const nr = (name: string) => lib.resolve(name);
    assert.deepEqual(
      ['execve', 'getpriority', 'clone', 'clone3', 'eventfd2', 'ptrace', 'prlimit64'].map(nr),
      [59, 140, 56, 435, 290, 101, 302],
    );
    // Calls swtpm leaves allowed stay allowed.
    for (const name of ['kill', 'tkill', 'execveat', 'copy_file_range', 'memfd_create']) {
      assert.ok(!numbers.includes(nr(name)), name);
    }
  },
);

test('seccompAction: absent or empty is kill; swtpm messages for bad values', () => {
  assert.equal(seccompAction(undefined), 'kill');
  assert.equal(seccompAction(''), 'kill');
  assert.equal(seccompAction('action=none'), 'none');
  assert.equal(seccompAction('action=log'), 'log');
  assert.throws(() => seccompAction('action=default'), {
    message: 'Unsupported seccomp log action default',
  });
  assert.throws(() => seccompAction('action=kill,x'), {
    message: "Error parsing seccomp options: Unknown option 'x'",
  });
});

test('libuv starts every pool thread within the first queued job (what startThreadPool relies on: no await before the filter)', () => {
  // startThreadPool() queues one fs job and returns. A fresh CommonJS process has not
  // used the pool yet (an ES module entry would: its loader reads files through it);
  // UV_THREADPOOL_SIZE=3 makes the count unmistakable.
  const script = `
    const { readdirSync, stat } = require('node:fs');
    const before = readdirSync('/proc/self/task').length;
    stat('/', () => {});
    const after = readdirSync('/proc/self/task').length;
    process.stdout.write(String(after - before));`;
  const r = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '3' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '3');
});

/** The file `npm run build` wrote (scripts/seccomp-filters.js). */
const COMPILED = fileURLToPath(
  new URL('../../src/cli/server/seccomp-filters.json', import.meta.url),
);

test('the filters compiled at build time are the programs libseccomp builds here now', () => {
  const built = readCompiledFilters(COMPILED);
  assert.ok(built !== undefined, 'the build wrote a usable seccomp-filters.json');
  const dir = mkdtempSync(join(tmpdir(), 'tswtpm-seccomp-'));
  try {
    const now = compileFilters(loadLibseccomp(), join(dir, 'bpf'));
    assert.deepEqual(built, now);
    assert.equal(readdirSync(dir).length, 0); // the temporary file is gone
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const kill = Buffer.from(built.programs.kill, 'base64');
  const log = Buffer.from(built.programs.log, 'base64');
  assert.equal(kill.length % 8, 0);
  assert.equal(log.length % 8, 0);
  assert.notDeepEqual(kill, log); // the same rules, another action
  if (arch() === 'x64') assert.equal(built.seccompNr, 317);
});

test('compiled filters are used only when made here, from this deny list, and sane', () => {
  const good = JSON.parse(readFileSync(COMPILED, 'utf8'));
  const dir = mkdtempSync(join(tmpdir(), 'tswtpm-seccomp-'));
  const file = join(dir, 'f.json');
  const check = (content: unknown) => {
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    return readCompiledFilters(file) !== undefined;
  };
  try {
    assert.equal(check(good), true);
    assert.equal(check({ ...good, arch: process.arch === 'x64' ? 'arm64' : 'x64' }), false);
    assert.equal(check({ ...good, denied: good.denied.slice(1) }), false);
    assert.equal(check({ ...good, denied: [...good.denied].reverse() }), false);
    const odd = Buffer.from(good.programs.kill, 'base64').subarray(0, 12).toString('base64');
    assert.equal(check({ ...good, programs: { ...good.programs, kill: odd } }), false);
    assert.equal(check({ ...good, programs: { kill: good.programs.kill } }), false);
    assert.equal(check({ ...good, seccompNr: -1 }), false);
    assert.equal(check('{"arch":'), false);
    assert.equal(check('null'), false);
    assert.equal(readCompiledFilters(join(dir, 'missing.json')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
