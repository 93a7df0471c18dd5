// `--seccomp action=none|kill|log` (issue 11): the filter is on by default, covers
// every thread, and the server still does everything it serves afterwards. The
// actions are observed through the test hook of src/sandbox/test-hook.ts, which makes
// the server call a denied syscall on SIGUSR2.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlClient, TpmClient, startTpm } from '../../src/client/index.js';
import { getRandom2, parseResponse } from '../../src/protocol/tpm/commands.js';
import { socketPair } from '../../src/transport/fd-channel.js';
import { assertFilter, readBack, stateWorkload, waitForFilter } from '../helpers/sandbox.js';
import {
  Proc,
  RawConn,
  canConnect,
  ctrlGetCapability,
  freePort,
  haveSwtpm,
  run,
  sleep,
  stopAll,
  tempDir,
} from '../helpers/spawn-tswtpm.js';

after(stopAll);

const HOOK = 'TSWTPM_TEST_SECCOMP_HOOK';
/** x86_64 number of getpriority(2), as audit records print it. */
const NR_GETPRIORITY = 140;

/** dmesg lines for `pid` with audit type 1326 (SECCOMP_RET_LOG), or undefined if unreadable. */
function seccompAudit(pid: number, mark: string): string[] | undefined {
  const logged = readFileSync('/proc/sys/kernel/seccomp/actions_logged', 'utf8');
  const r = spawnSync('dmesg', [], { encoding: 'utf8' });
  if (r.status !== 0 || !/\blog\b/.test(logged)) return undefined;
  // Only what the kernel logged after `mark`: with pid_max 32768, an earlier process that
  // had this pid (a test run an hour ago) may have left seccomp records of its own.
  const lines = r.stdout.split('\n');
  const from = lines.findIndex((l) => l.includes(mark));
  if (from < 0) return undefined;
  return lines.slice(from).filter((l) => l.includes('type=1326') && l.includes(` pid=${pid} `));
}

/** Writes a unique line into the kernel log (root), after which seccompAudit() looks. */
function kernelLogMark(): string {
  const mark = `tswtpm-seccomp-test-${process.pid}-${Date.now()}-${Math.random()}`;
  try {
    writeFileSync('/dev/kmsg', `${mark}\n`);
  } catch {}
  return mark;
}

/** Waits until `p` wrote `re` to stderr (or exited). */
async function stderrMatch(p: Proc, re: RegExp, ms = 5000): Promise<boolean> {
  for (let waited = 0; waited < ms && p.running; waited += 20) {
    if (re.test(p.stderr())) return true;
    await sleep(20);
  }
  return re.test(p.stderr());
}

test('no --seccomp: a filter on every thread; long commands, NV writes, Shutdown(STATE) and a restart work under it', async () => {
  const stateDir = tempDir();
  const t = await startTpm({ stateDir });
  let restarted: Awaited<ReturnType<typeof startTpm>> | undefined;
  try {
    await waitForFilter(t.pid);
    assertFilter(t.pid, true);
    assert.deepEqual(await stateWorkload(t.tpm), [0, 0, 0, 0, 0, 0]);
    assertFilter(t.pid, true); // still alive, still filtered
    await t.close();
    // CMD_SHUTDOWN ends it normally: nothing on the way out needs a denied syscall.
    assert.equal(t.process.signalCode, null);
    assert.equal(t.process.exitCode, 0);
    assert.ok(existsSync(join(stateDir, 'tpm2-00.permall')));
    restarted = await startTpm({
      stateDir,
      flags: ['not-need-init', 'startup-state'],
    });
    await waitForFilter(restarted.pid);
    assertFilter(restarted.pid, true);
    assert.equal(await readBack(restarted.tpm), 0);
  } finally {
    await t.close();
    await restarted?.close();
  }
});

test('--seccomp action=none: no filter on any thread', async () => {
  const t = await startTpm({ args: ['--seccomp', 'action=none'] });
  try {
    assertFilter(t.pid, false);
  } finally {
    await t.close();
  }
});

test('CMD_SET_DATAFD under the filter: the passed socket carries TPM commands', async () => {
  const dir = tempDir();
  const ctrl = join(dir, 'ctrl.sock');
  const p = new Proc('tswtpm', [
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--ctrl',
    `type=unixio,path=${ctrl}`,
    '--flags',
    'not-need-init,startup-clear',
  ]);
  try {
    for (let i = 0; i < 500 && !(await canConnect({ path: ctrl })); i++) await sleep(20);
    const control = new ControlClient({ path: ctrl }, { timeoutMs: 10000 });
    await control.getCapability();
    await waitForFilter(p.pid);
    assertFilter(p.pid, true);
    const [ours, theirs] = socketPair('stream');
    await control.setDataFd(theirs);
    const tpm = new TpmClient({ fd: ours });
    const rsp = await tpm.transmit(getRandom2(16));
    assert.equal(parseResponse(rsp).rc, 0);
    assert.equal(rsp.length, 10 + 2 + 16);
    await tpm.close();
    await control.shutdown();
    await control.close();
  } catch (err) {
    await p.stop('SIGKILL');
    throw err;
  }
  const e = await p.wait();
  assert.deepEqual([e.code, e.signal], [0, null], p.stderr());
});

for (const call of ['getpriority', 'execve']) {
  test(`action=kill (the default): a denied ${call} ends the whole process with SIGSYS, with the compiled filter and with libseccomp's`, async () => {
    // The filter compiled at build time, and libseccomp's at run time.
    for (const runtime of ['0', '1']) {
      for (const args of [[], ['--seccomp', 'action=kill']]) {
        const env = { ...process.env, [HOOK]: call, TSWTPM_SECCOMP_RUNTIME: runtime };
        const t = await startTpm({ args, env });
        try {
          await waitForFilter(t.pid);
          const maps = readFileSync(`/proc/${t.pid}/maps`, 'utf8');
          assert.equal(maps.includes('/libseccomp.so'), runtime === '1', `runtime=${runtime}`);
          process.kill(t.pid, 'SIGUSR2');
          const e = await new Promise<NodeJS.Signals | null>((r) =>
            t.process.once('exit', (_c, s) => r(s)),
          );
          assert.equal(e, 'SIGSYS');
        } finally {
          await t.close();
        }
      }
    }
  });
}

test('action=log: the denied call runs and is audit-logged; the process keeps serving', async (tc) => {
  for (const call of ['getpriority', 'execve']) {
    const mark = kernelLogMark();
    const t = await startTpm({
      args: ['--seccomp', 'action=log'],
      env: { ...process.env, [HOOK]: call },
      stderr: 'pipe',
    });
    try {
      await waitForFilter(t.pid);
      assertFilter(t.pid, true);
      assert.deepEqual(await stateWorkload(t.tpm), [0, 0, 0, 0, 0, 0]);
      const before = seccompAudit(t.pid, mark);
      // The whole workload ran without one call from the deny list.
      if (before !== undefined) assert.deepEqual(before, []);
      let err = '';
      t.process.stderr?.on('data', (b: Buffer) => {
        err += b.toString();
      });
      process.kill(t.pid, 'SIGUSR2');
      for (let i = 0; i < 250 && !err.includes('test hook'); i++) await sleep(20);
      const expected = call === 'execve' ? /execve -> status 0/ : /getpriority -> -?\d+/;
      assert.match(err, expected);
      await t.control.getCapability();
      assertFilter(t.pid, true);
      const logged = (audit: string[]) =>
        call === 'getpriority'
          ? audit.some(
              (l) => l.includes(` syscall=${NR_GETPRIORITY} `) && /code=0x7ffc0000/.test(l),
            )
          : audit.length > 0; // clone/eventfd2 for the child
      // The kernel writes audit records from a thread of its own, and without auditd
      // it rate-limits them (printk: 10 in 5 s, "kauditd_printk_skb: N callbacks
      // suppressed"); the kill tests before this one leave records of their own. So the
      // record is awaited, and the call made again every 2 s until one gets through.
      let audit = seccompAudit(t.pid, mark);
      for (let i = 1; i <= 60 && audit !== undefined && !logged(audit); i++) {
        await sleep(200);
        if (i % 10 === 0) process.kill(t.pid, 'SIGUSR2');
        audit = seccompAudit(t.pid, mark);
      }
      if (audit === undefined) tc.diagnostic('dmesg not readable here: audit records not checked');
      else assert.ok(logged(audit), audit.join('\n'));
    } finally {
      await t.close();
    }
    assert.equal(t.process.exitCode, 0);
  }
});

test('bad --seccomp values: swtpm 0.7.1 messages, exit 1; --print-capabilities ignores them', async () => {
  const dir = tempDir();
  for (const [value, msg] of [
    ['action=default', 'Unsupported seccomp log action default'],
    ['foo=bar', "Error parsing seccomp options: Unknown option 'foo=bar'"],
    ['action=kill,x', "Error parsing seccomp options: Unknown option 'x'"],
  ] as const) {
    const port = await freePort();
    const args = ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--seccomp', value];
    const ours = await run('tswtpm', [...args, '--server', `type=tcp,port=${port}`]);
    assert.deepEqual([ours.code, ours.stderr], [1, `tswtpm: ${msg}\n`]);
    if (haveSwtpm) {
      const theirs = await run('swtpm', [...args, '--server', `type=tcp,port=${port}`]);
      assert.deepEqual([theirs.code, theirs.stderr], [1, `swtpm: ${msg}\n`]);
    }
    const caps = await run('tswtpm', ['socket', '--seccomp', value, '--print-capabilities']);
    assert.equal(caps.code, 0);
    assert.match(caps.stdout, /"cmdarg-seccomp"/);
  }
  const help = await run('tswtpm', ['socket', '--help']);
  assert.match(help.stdout, /^--seccomp action=none\|kill/m);
});

test('nothing is served before the filter is in: a client that connected early is answered after the seccomp step', async () => {
  // A preload records the start-up steps and every command received, in order. It holds
  // the server for 400 ms once its channels listen, so that clients connect and send
  // their commands while the TPM is still starting, and it keeps the thread pool (one
  // thread) busy for 300 ms once TPM2_Startup is sent, so that the event loop turns
  // several times while the seccomp step waits for the pool. swtpm polls its sockets
  // only from its main loop, after the filter is installed.
  const dir = tempDir();
  const preload = join(dir, 'order.cjs');
  writeFileSync(
    preload,
    `const dc = require('node:diagnostics_channel');
const { writeSync } = require('node:fs');
const out = (s) => writeSync(2, 'ORDER ' + s + '\\n');
dc.channel('tswtpm:startup').subscribe((m) => {
  out('step ' + m.step);
  if (m.step === 'listening') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
  if (m.step === 'startup-sent') require('node:crypto').pbkdf2(Buffer.alloc(8), Buffer.alloc(8), 3e5, 32, 'sha256', () => {});
});
dc.channel('tswtpm:wire').subscribe((m) => { if (!m.internal) out('wire ' + m.kind); });
`,
  );
  for (const transport of ['tcp', 'unixio'] as const) {
    const data = transport === 'tcp' ? { port: await freePort() } : { path: join(dir, 'd.sock') };
    const ctrl = transport === 'tcp' ? { port: await freePort() } : { path: join(dir, 'c.sock') };
    const chan = (a: { port: number } | { path: string }) =>
      'port' in a ? `type=tcp,port=${a.port}` : `type=unixio,path=${a.path}`;
    const p = new Proc(
      'tswtpm',
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${tempDir()}`,
        '--server',
        chan(data),
        '--ctrl',
        chan(ctrl),
        '--flags',
        'not-need-init,startup-clear',
      ],
      { NODE_OPTIONS: `--require ${preload}`, UV_THREADPOOL_SIZE: '1' },
    );
    try {
      // The first connection carries the command, sent as soon as the socket listens
      // (a refused connect is retried); the control channel is asked at the same time.
      let rsp: Buffer | undefined;
      while (rsp === undefined) {
        try {
          const c = await RawConn.connect(data);
          const caps = ctrlGetCapability(ctrl);
          try {
            rsp = await c.transact(getRandom2(8), 10000);
          } finally {
            c.destroy();
          }
          await caps;
        } catch {
          assert.ok(p.running, p.stderr());
          await sleep(2);
        }
      }
      assert.equal(parseResponse(rsp).rc, 0);
      const order = p
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('ORDER '))
        .map((l) => l.slice(6));
      const seccomp = order.indexOf('step seccomp');
      const first = order.findIndex((l) => l.startsWith('wire '));
      assert.ok(seccomp >= 0 && first >= 0, order.join(', '));
      assert.ok(first > order.indexOf('step ready'), `${transport}: ${order.join(', ')}`);
    } finally {
      await p.stop();
    }
  }
});
