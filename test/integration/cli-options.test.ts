// tswtpm's command line next to Debian's swtpm 0.7.1 (control-channel.md §5): the same
// bad invocations give the same exit code and the same message, modulo the program
// name (`swtpm:` / `tswtpm:`). Deliberate differences are asserted as ours and named
// (docs/compat.md). Also: SIGTERM/SIGINT shut down cleanly, with the automatic
// TPM2_Shutdown observable after a restart.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  TPM2_SU_CLEAR,
  createPrimaryRsa2,
  parsePcrRead2,
  parseResponse,
  pcrExtend2,
  pcrRead2,
  startup2,
} from '../../src/protocol/tpm/commands.js';
import {
  type Program,
  RawConn,
  type RunResult,
  freePort,
  haveSwtpm,
  run,
  startTpm,
  stopAll,
  tempDir,
} from '../helpers/spawn-tswtpm.js';
import { RC, extendedOnce, hex } from '../helpers/tpm-commands.js';

after(stopAll);

/** TPM_PORT would change what `--server type=tcp` means. */
const ENV = { TPM_PORT: undefined } as NodeJS.ProcessEnv;

/** Program names and swtpm's usage text are the only parts allowed to differ. */
function norm(text: string): string[] {
  return text
    .replace(/^t?swtpm: /gm, 'PROG: ')
    .replace(/Usage: t?swtpm/g, 'Usage: PROG')
    .split('\n')
    .filter((l) => l !== '');
}

async function both(args: readonly string[]): Promise<{ ours: RunResult; theirs?: RunResult }> {
  const [ours, theirs] = await Promise.all([
    run('tswtpm', args, { env: ENV }),
    haveSwtpm ? run('swtpm', args, { env: ENV }) : Promise.resolve(undefined),
  ]);
  assert.equal(ours.timedOut, false, `tswtpm ${args.join(' ')} did not exit`);
  return theirs === undefined ? { ours } : { ours, theirs };
}

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  readonly code: number;
  /** Expected first stderr line(s) after norm(); compared with swtpm's too. */
  readonly stderr: readonly string[];
}

const state = tempDir();
const CASES: readonly Case[] = [
  { name: 'no interface', args: [], code: 1, stderr: ['Missing TPM interface type.'] },
  {
    name: 'unknown interface',
    args: ['foo'],
    code: 1,
    stderr: ["Unsupported TPM interface type 'foo'.", 'TPM emulator with choice of interface.'],
  },
  {
    name: 'unknown option (then the usage)',
    args: ['socket', '--bogus'],
    code: 1,
    stderr: ["socket: unrecognized option '--bogus'", 'Usage: PROG socket [options]'],
  },
  {
    name: 'option without its argument',
    args: ['socket', '-p'],
    code: 1,
    stderr: ["socket: option requires an argument -- 'p'", 'Usage: PROG socket [options]'],
  },
  {
    name: 'stray parameter',
    args: ['socket', 'stray'],
    code: 1,
    stderr: ["PROG: Unknown parameter 'stray'"],
  },
  {
    name: 'unknown sub-option',
    args: ['socket', '--server', 'type=tcp,bogus=1'],
    code: 1,
    stderr: ["PROG: Error parsing server options: Unknown option 'bogus=1'"],
  },
  {
    name: 'sub-option with an empty value',
    args: ['socket', '--server', 'type=tcp,port='],
    code: 1,
    stderr: ["PROG: Error parsing server options: Unknown option 'port='"],
  },
  {
    name: 'empty pid file name',
    args: ['socket', '--tpmstate', `dir=${state}`, '--pid', 'file='],
    code: 1,
    stderr: ["PROG: Error parsing pid options: Unknown option 'file='"],
  },
  {
    name: 'unknown flag',
    args: ['socket', '--tpmstate', `dir=${state}`, '--flags', 'bogus'],
    code: 1,
    stderr: ["PROG: Error parsing flags options: Unknown option 'bogus'"],
  },
  {
    name: 'bad number',
    args: ['socket', '--server', 'type=tcp,port=abc'],
    code: 1,
    stderr: ["PROG: Error parsing server options: invalid number 'abc'"],
  },
  {
    name: 'bad number in --log',
    args: ['socket', '--tpmstate', `dir=${state}`, '--log', 'level=abc'],
    code: 1,
    stderr: ["PROG: Error parsing logging options: invalid number 'abc'"],
  },
  {
    name: 'bad mode',
    args: ['socket', '--server', 'type=unixio,path=/tmp/x.sock,mode=999'],
    code: 1,
    stderr: ["PROG: Error parsing server options: invalid mode type '999'"],
  },
  {
    name: 'bad --tpmstate mode',
    args: ['socket', '--tpmstate', `dir=${state},mode=0888`],
    code: 1,
    stderr: ["PROG: Error parsing tpmstate options: invalid mode type '0888'"],
  },
  {
    name: 'unknown server type',
    args: ['socket', '--server', 'type=foo'],
    code: 1,
    stderr: ['PROG: Unsupport socket type: foo'],
  },
  {
    name: 'unknown ctrl type',
    args: ['socket', '--ctrl', 'type=foo'],
    code: 1,
    stderr: ['PROG: Unsupport control channel type: foo'],
  },
  {
    name: '--tpm2 --flags startup-deactivated (exit 0)',
    args: ['socket', '--tpm2', '--tpmstate', `dir=${state}`, '--flags', 'startup-deactivated'],
    code: 0,
    stderr: ['PROG: TPM 2 does not support startup deactivated.'],
  },
  {
    name: 'missing TCP port (TPM_PORT unset)',
    args: ['socket', '--tpmstate', `dir=${state}`, '--server', 'type=tcp'],
    code: 1,
    stderr: ['PROG: No valid port number provided for TCP socket.'],
  },
  {
    name: 'TCP port out of range',
    args: ['socket', '--tpmstate', `dir=${state}`, '--server', 'type=tcp,port=65536'],
    code: 1,
    stderr: ['PROG: TCP socket port outside valid range'],
  },
  {
    name: 'ctrl TCP port missing',
    args: ['socket', '--tpmstate', `dir=${state}`, '--ctrl', 'type=tcp'],
    code: 1,
    stderr: ['PROG: Missing port and fd options for TCP control channel'],
  },
  {
    name: 'ctrl UnixIO path missing',
    args: ['socket', '--tpmstate', `dir=${state}`, '--ctrl', 'type=unixio'],
    code: 1,
    stderr: ['PROG: Missing path and fd options for UnixIO control channel'],
  },
  {
    name: 'server UnixIO path missing',
    args: ['socket', '--tpmstate', `dir=${state}`, '--server', 'type=unixio'],
    code: 1,
    stderr: ['PROG: Missing path and file descriptor option for UnixIO socket'],
  },
  {
    name: 'legacy -p not a number',
    args: ['socket', '--tpmstate', `dir=${state}`, '-p', '12ab'],
    code: 1,
    stderr: ["PROG: Cannot parse socket port number '12ab'."],
  },
  {
    name: 'legacy -p out of range',
    args: ['socket', '--tpmstate', `dir=${state}`, '-p', '99999'],
    code: 1,
    stderr: ['PROG: Port is outside valid range.'],
  },
  {
    name: '--print-states with a directory and no state',
    args: ['socket', '--print-states', '--tpmstate', `dir=${tempDir()}`],
    code: 0,
    stderr: [],
  },
  // --vtpm-proxy refuses a provided device before it touches /dev/vtpmx.
  {
    name: '--vtpm-proxy with --chardev',
    args: ['chardev', '--vtpm-proxy', '--tpmstate', `dir=${state}`, '-c', '/dev/null'],
    code: 1,
    stderr: ['PROG: Cannot use vTPM proxy with a provided device.'],
  },
  // This host's kernel has no vTPM proxy (the guest test covers a real one).
  ...(existsSync('/dev/vtpmx')
    ? []
    : [
        {
          name: '--vtpm-proxy without /dev/vtpmx',
          args: ['chardev', '--vtpm-proxy', '--tpm2', '--tpmstate', `dir=${state}`],
          code: 1,
          stderr: ['PROG: Could not open /dev/vtpmx: No such file or directory'],
        },
      ]),
];

describe('command line vs Debian swtpm 0.7.1', () => {
  it('bad invocations: same exit code and message (program name aside)', async () => {
    for (const c of CASES) {
      const { ours, theirs } = await both(c.args);
      const mine = norm(ours.stderr);
      assert.equal(ours.code, c.code, `${c.name}: tswtpm exit code (${ours.stderr})`);
      assert.deepEqual(mine.slice(0, c.stderr.length), [...c.stderr], `${c.name}: tswtpm`);
      if (c.stderr.length === 0) assert.deepEqual(mine, [], `${c.name}: nothing on stderr`);
      if (theirs !== undefined) {
        assert.equal(theirs.code, c.code, `${c.name}: swtpm exit code (${theirs.stderr})`);
        assert.deepEqual(norm(theirs.stderr).slice(0, c.stderr.length), [...c.stderr], c.name);
        assert.equal(ours.stdout, theirs.stdout, `${c.name}: stdout`);
      }
    }
  });

  it('--pid file= in a missing directory: exit 1 (message: ours adds the errno name)', async () => {
    const args = [
      'socket',
      '--tpmstate',
      `dir=${tempDir()}`,
      '--server',
      `type=tcp,port=${await freePort()}`,
      '--pid',
      'file=/nonexistent/x',
    ];
    const { ours, theirs } = await both(args);
    assert.equal(ours.code, 1);
    // swtpm: "Could not open pidfile /nonexistent/x : No such file or directory";
    // ours carries Node's text "ENOENT: no such file or directory, open '...'".
    assert.match(
      ours.stderr,
      /^tswtpm: Could not open pidfile \/nonexistent\/x : .*no such file/im,
    );
    if (theirs !== undefined) {
      assert.equal(theirs.code, 1);
      assert.match(theirs.stderr, /^swtpm: Could not open pidfile \/nonexistent\/x : /m);
    }
  });

  it('a TCP port in use: exit 1, "Could not open TCP socket: Address already in use"', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const port = (busy.address() as AddressInfo).port;
      for (const bindaddr of ['', ',bindaddr=0.0.0.0']) {
        const args = [
          'socket',
          '--tpmstate',
          `dir=${tempDir()}`,
          '--server',
          `type=tcp,port=${port}${bindaddr}`,
          '--ctrl',
          `type=tcp,port=${await freePort()}`,
        ];
        const { ours, theirs } = await both(args);
        const want = ['PROG: Could not open TCP socket: Address already in use'];
        assert.equal(ours.code, 1, ours.stderr);
        assert.deepEqual(norm(ours.stderr), want, `tswtpm${bindaddr}`);
        if (theirs !== undefined) {
          assert.equal(theirs.code, 1, theirs.stderr);
          assert.deepEqual(norm(theirs.stderr), want, `swtpm${bindaddr}`);
        }
      }
    } finally {
      busy.close();
    }
  });

  it('-v/--version prints "TPM emulator version ..." and exits 0', async () => {
    for (const flag of ['-v', '--version']) {
      const { ours, theirs } = await both([flag]);
      assert.equal(ours.code, 0);
      assert.match(ours.stdout, /^TPM emulator version \d+\.\d+\.\d+, Copyright \(c\)/);
      if (theirs !== undefined) {
        assert.equal(theirs.code, 0);
        assert.match(theirs.stdout, /^TPM emulator version \d+\.\d+\.\d+, Copyright \(c\)/);
      }
    }
    // Deliberate: `tswtpm socket -v` prints the version too; swtpm 0.7.1 rejects -v after
    // the interface name ("socket: invalid option -- 'v'", exit 1).
    const sub = await run('tswtpm', ['socket', '-v']);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /^TPM emulator version /);
  });

  it('--print-capabilities: swtpm JSON, tpm-2.0 and (with --tpm2) rsa-keysize-2048', async () => {
    for (const tpm2 of [false, true]) {
      const args = ['socket', ...(tpm2 ? ['--tpm2'] : []), '--print-capabilities'];
      const { ours, theirs } = await both(args);
      assert.equal(ours.code, 0);
      assert.equal(ours.stderr, '');
      assert.match(ours.stdout, /^\{ "type": "swtpm", "features": \[ "/);
      const caps = JSON.parse(ours.stdout) as { type: string; features: string[]; version: string };
      assert.equal(caps.type, 'swtpm');
      assert.ok(caps.features.includes('tpm-2.0'));
      assert.ok(caps.features.includes('tpm-1.2'));
      assert.equal(caps.features.includes('rsa-keysize-2048'), tpm2);
      if (theirs !== undefined) {
        assert.equal(theirs.code, 0);
        const c = JSON.parse(theirs.stdout) as { features: string[] };
        // Everything swtpm 0.7.1 claims (cmdarg-seccomp included), we claim too, in
        // swtpm's order; the 0.8+ additions (cmdarg-chroot, ...) sit where 0.10 puts them.
        const missing = c.features.filter((f) => !caps.features.includes(f));
        assert.deepEqual(missing, []);
        const common = caps.features.filter((f) => c.features.includes(f));
        assert.deepEqual(common, c.features);
        const at = (f: string) => caps.features.indexOf(f);
        assert.ok(at('ctrl-opt-terminate') < at('cmdarg-seccomp'));
        assert.ok(at('cmdarg-seccomp') < at('cmdarg-key-fd'));
        assert.equal(at('cmdarg-chroot'), at('cmdarg-print-states') + 1);
        assert.equal(at('cmdarg-migration'), at('cmdarg-chroot') + 1);
      }
    }
  });

  it('--print-states: the same JSON as swtpm for the same directory; --tpmstate required', async () => {
    const dir = tempDir();
    const s = await startTpm({ dir, flags: 'not-need-init,startup-clear' });
    await s.p.stop();
    const { ours, theirs } = await both([
      'socket',
      '--tpm2',
      '--print-states',
      '--tpmstate',
      `dir=${dir}`,
    ]);
    assert.equal(ours.code, 0);
    const size = readFileSync(join(dir, 'tpm2-00.permall')).length;
    assert.equal(
      ours.stdout,
      `{ "type": "swtpm", "states": [ {"name": "permall", "size": ${size}} ] }`,
    );
    if (theirs !== undefined) assert.equal(ours.stdout, theirs.stdout);

    const none = await both(['socket', '--print-states']);
    assert.equal(none.ours.code, 1);
    // swtpm: "Error: --tpmstate option is required for --print-states"; ours names
    // TPM_PATH as the alternative (deliberate wording).
    assert.match(none.ours.stderr, /^tswtpm: Error: .*--tpmstate/m);
    if (none.theirs !== undefined) assert.equal(none.theirs.code, 1);
  });
});

describe('signals: clean shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal}: exit 0, pid file and socket files removed, automatic TPM2_Shutdown(STATE) stored`, async () => {
      const s = await startTpm({
        data: 'unixio',
        ctrl: 'unixio',
        pidFile: true,
        flags: 'not-need-init,startup-clear',
      });
      const data = (s.data as { path: string }).path;
      const ctrl = (s.ctrl as { path: string }).path;
      const c = await RawConn.connect(s.data!);
      const digest = Buffer.alloc(32, 0x5a);
      assert.equal(parseResponse(await c.transact(pcrExtend2(10, digest))).rc, RC.SUCCESS);
      assert.equal(readFileSync(s.pidFile!, 'utf8').trim(), String(s.p.pid));
      assert.ok(existsSync(data) && existsSync(ctrl));
      // No TPM2_Shutdown from the client: the process must send it on the signal.
      assert.deepEqual(await s.p.stop(signal), { code: 0, signal: null });
      c.destroy();
      assert.equal(existsSync(s.pidFile!), false, 'pid file removed');
      assert.equal(existsSync(data), false, 'data socket removed');
      assert.equal(existsSync(ctrl), false, 'ctrl socket removed');

      // Startup(STATE) only succeeds after a stored Shutdown(STATE): PCR 10 survives.
      const again = await startTpm({ dir: s.dir, flags: 'not-need-init,startup-state' });
      try {
        const c2 = await RawConn.connect(again.data!);
        const pcr = parsePcrRead2(await c2.transact(pcrRead2(10)));
        assert.equal(hex(pcr), hex(extendedOnce(digest)));
        c2.destroy();
      } finally {
        await again.p.stop();
      }
    });
  }

  it('with disable-auto-shutdown (and with swtpm 0.7.1, which predates it) the restart cannot resume', async () => {
    const runs: Array<{ program: Program; flags: string }> = [
      { program: 'tswtpm', flags: 'not-need-init,startup-clear,disable-auto-shutdown' },
    ];
    if (haveSwtpm) runs.push({ program: 'swtpm', flags: 'not-need-init,startup-clear' });
    for (const r of runs) {
      const s = await startTpm({ program: r.program, flags: r.flags });
      const c = await RawConn.connect(s.data!);
      assert.equal(parseResponse(await c.transact(pcrExtend2(10, Buffer.alloc(32, 1)))).rc, 0);
      c.destroy();
      assert.equal((await s.p.stop('SIGTERM')).code, 0);
      const again = await startTpm({
        program: r.program,
        dir: s.dir,
        flags: 'not-need-init,startup-state',
      });
      try {
        const c2 = await RawConn.connect(again.data!);
        // Startup(STATE) failed (no saved state), so the TPM is not started.
        assert.equal(hex(await c2.transact(pcrRead2(10))), '80010000000a00000100', r.program);
        assert.equal(hex(await c2.transact(startup2(TPM2_SU_CLEAR))), '80010000000a00000000');
        c2.destroy();
      } finally {
        await again.p.stop();
      }
    }
  });

  it('SIGTERM during a long command (CreatePrimary RSA-3072) still exits 0', async () => {
    const s = await startTpm({ flags: 'not-need-init,startup-clear' });
    const c = await RawConn.connect(s.data!);
    c.write(createPrimaryRsa2(3072));
    await new Promise((r) => setTimeout(r, 20));
    const e = await s.p.stop('SIGTERM', 20000);
    c.destroy();
    assert.deepEqual(e, { code: 0, signal: null }, s.p.stderr());
  });
});
