import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../../src/client/control.js';
import { TpmClient } from '../../src/client/tpm.js';
import { freePort, run, tempDir } from '../helpers/procs.js';
import { TSWTPM, startSwtpm } from '../helpers/start-swtpm.js';
import { parseTraffic } from '../helpers/tpm12-setup.js';

// tswtpm_bios against Debian swtpm_bios 0.7.1: the same stdout, stderr and exit code,
// and the same command bytes (from the server's `--log level=20`), each tool on its own
// fresh TPM of the same kind (C swtpm and tswtpm, TPM 1.2 and TPM 2).

const HAVE = (await run('swtpm_bios', ['-h'])).code === 0;
const BIN = fileURLToPath(new URL('../../../bin/tswtpm_bios.js', import.meta.url));
const work = tempDir('bios-diff-');
after(() => work.remove());

interface Out {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

/** Runs swtpm_bios (as argv[0] tswtpm_bios, so usage names the same program) or ours. */
function bios(
  tool: 'c' | 'ts',
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<Out> {
  const e = { ...process.env, ...env };
  const child =
    tool === 'c'
      ? spawn('swtpm_bios', args, { argv0: 'tswtpm_bios', env: e })
      : spawn(process.execPath, [BIN, ...args], { env: e });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString('latin1');
  });
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString('latin1');
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ stdout, stderr, code }));
  });
}

/** The usage's first line names the tool and its version (docs/compat.md); the rest must match. */
const VERSION_LINE = /^TPM emulator BIOS emulator version [^\n]*\n/;
// swtpm_bios 0.7.1 misspells "TPM2_ImcrementalSelfTest"; 0.10 (and we) spell it right.
const comparable = (o: Out) => ({
  ...o,
  stdout: o.stdout.replace(VERSION_LINE, '<version>\n').replace('Imcremental', 'Incremental'),
});

async function same(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Out> {
  const [c, ts] = await Promise.all([bios('c', args, env), bios('ts', args, env)]);
  assert.deepEqual(comparable(ts), comparable(c), `args ${args.join(' ')}`);
  return c;
}

test(
  'options, bad options, unreachable addresses, devices: same output and exit code',
  { skip: !HAVE },
  async () => {
    const port = await freePort(); // nobody listens there
    const h = await same(['-h']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /\ntswtpm_bios \[options\]\n/);
    const bad = [
      ['-v'],
      ['--foo'],
      ['--help'],
      ['-x'],
      ['--tcp'],
      ['-c', '--tpm2=1'],
      ['--t', 'x'],
    ];
    for (const arg of [':70000', 'a:b', ':x', 'h:99999999999']) bad.push(['--tcp', arg]);
    // -v is listed but has no handler: usage, exit 1.
    for (const r of await Promise.all(bad.map((a) => same(a)))) assert.equal(r.code, 1);
    const envTcp = { TCSD_USE_TCP_DEVICE: '1', TCSD_TCP_DEVICE_PORT: String(port) };
    const unreachable: Array<[string[], NodeJS.ProcessEnv]> = [
      [['--tcp', `:${port}`], {}],
      [['--tcp', `localhost:${port}`], {}],
      [['--tcp', `127.0.0.1:${port - 65536}`], {}], // a negative port passes 0.7.1's check
      [['--tcp', 'nosuchhost.invalid:5'], {}],
      [['--unix', join(work.path, 'none.sock')], {}],
      [['--unix', `/${'a'.repeat(120)}`], {}],
      [['--tpm-device', '/nonexistent'], {}],
      [['--tpm-device', '/dev/null'], {}], // read() gives 0 bytes: too short
      [[], { TPM_DEVICE: '/nonexistent' }],
      [[], envTcp],
      [['--tpm2', '-u'], { ...envTcp, TCSD_TCP_DEVICE_HOSTNAME: '127.0.0.1' }],
    ];
    const results = await Promise.all(unreachable.map(([args, env]) => same(args, env)));
    for (const r of results) assert.equal(r.code, 255);
    // A FIFO as the character device echoes each command: the "result" is its ordinal, so
    // both tools must open, write and read the device alike, command by command.
    const fifo = join(work.path, 'fifo');
    assert.equal((await run('mkfifo', [fifo])).code, 0);
    const echo = await same(['--tpm-device', fifo, '-cs', '-u', '-ea']);
    assert.match(echo.stderr, /^TPM_Startup\(0x01\) returned error code 0x00000099\n/);
    assert.equal(echo.code, 128);
    assert.equal((await same(['--tpm2', '-cs', '-u'], { TPM_DEVICE: fifo })).code, 128);
  },
);

/**
 * A Unix socket peer that answers the n-th connection with `replies[n]` (hex; '' closes
 * without a reply), to run both tools into swtpm_bios' transport failures.
 */
async function scripted(replies: readonly string[], fn: (path: string) => Promise<void>) {
  const path = join(work.path, `scripted-${Math.random().toString(36).slice(2)}.sock`);
  let n = 0;
  const srv = createServer((sock) => {
    const reply = replies[n++] ?? '';
    sock.once('data', () => (reply === '' ? sock.end() : sock.end(Buffer.from(reply, 'hex'))));
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(path, r));
  try {
    await fn(path);
  } finally {
    srv.close();
  }
}

test(
  'transport failures: same messages (a stale TPM error repeated), exit 255',
  { skip: !HAVE },
  async () => {
    const startupFailed = '00c40000000a00000026';
    const cases: Array<[string[], string[]]> = [
      [[], [startupFailed, '']], // PP gets no reply: "too short", then the stale 0x26 again
      [[], ['00c40000000b00000000']], // the header says 11 bytes, 10 came: malformed
      [
        ['--tpm2', '-cs'],
        ['80010000000a00000100', '8001'],
      ], // a 2-byte reply
    ];
    for (const [args, replies] of cases) {
      const outs: Out[] = [];
      for (const tool of ['c', 'ts'] as const) {
        await scripted(
          replies,
          async (path) => void outs.push(await bios(tool, [...args, '--unix', path])),
        );
      }
      assert.deepEqual(
        comparable(outs[1]!),
        comparable(outs[0]!),
        `${args.join(' ')} ${replies.join(',')}`,
      );
      assert.equal(outs[0]!.code, 255);
    }
  },
);

type Server = 'swtpm' | 'tswtpm';

/** How the TPM is before a run: fresh, already started, or permanently deactivated (1.2). */
type Prep = 'fresh' | 'started' | 'deactivated';

/** What to run: the tool's arguments, the TPM's state, the address from the environment. */
interface Case {
  readonly args: readonly string[];
  readonly prep?: Prep;
  /** Reach the TPM through TCSD_USE_TCP_DEVICE/TCSD_TCP_DEVICE_PORT instead of an option. */
  readonly env?: boolean;
}

const hex = (h: string) => Buffer.from(h, 'hex');
/** TPM 1.2: PP(CMD_ENABLE), PP(PRESENT), PhysicalSetDeactivated(TRUE). */
const DEACTIVATE = [
  '00c10000000c4000000a0020',
  '00c10000000c4000000a0008',
  '00c10000000b0000007201',
];

/**
 * One server per kind and TPM version (TPM 1.2 on a Unix socket, TPM 2 on TCP); before
 * each tool run its TPM is made new: CMD_STOP, the state files removed, CMD_INIT (a fresh
 * libtpms state), then the preparation. Much cheaper than a process per run.
 */
async function bench(server: Server, tpm2: boolean) {
  const log = join(work.path, `log-${server}-${tpm2 ? 2 : 12}`);
  const s = await startSwtpm({
    tpm2,
    server: tpm2 ? 'tcp' : 'unix',
    flags: ['not-need-init'],
    args: ['--log', `file=${log},level=20`],
    ...(server === 'tswtpm' ? { command: TSWTPM } : {}),
  });
  const ctrl = new ControlClient(s.ctrl);
  const startup = tpm2 ? '80010000000c000001440000' : '00c10000000c000000990001';
  const commands = () =>
    parseTraffic(readFileSync(log, 'utf8'))
      .filter((t) => t.kind === 'cmd')
      .map((t) => t.bytes);
  const send = async (cmds: readonly string[]) => {
    const tpm = new TpmClient(s.server!, { persistent: false });
    for (const c of cmds) await tpm.transmit(hex(c));
    await tpm.close();
  };
  const target = tpm2 ? ['--tcp', `:${s.serverPort}`] : ['--unix', s.serverPath!];
  const env = { TCSD_USE_TCP_DEVICE: '1', TCSD_TCP_DEVICE_PORT: String(s.serverPort) };
  return {
    async run(tool: 'c' | 'ts', c: Case) {
      await ctrl.stop();
      for (const f of readdirSync(s.stateDir)) if (f !== '.lock') rmSync(join(s.stateDir, f));
      await ctrl.init();
      if (c.prep === 'started') await send([startup]);
      if (c.prep === 'deactivated') {
        await send([startup, ...DEACTIVATE]);
        await ctrl.init(); // a reset: the permanent flag stays
      }
      const mark = commands().length;
      const out = await bios(tool, c.env ? c.args : [...c.args, ...target], c.env ? env : {});
      return { out, cmds: commands().slice(mark) };
    },
    async close() {
      await ctrl.close();
      await s.close();
    },
  };
}
type Bench = Awaited<ReturnType<typeof bench>>;

// Every path through the sequences on C swtpm (-c alone = the default, -o = -c -o, and
// -cs/-u/-ea only add steps); the common ones on tswtpm, where the server matters less.
const TPM12_CASES: Case[] = [[], ['-n'], ['-s'], ['-d'], ['-c', '-o'], ['-o', '-c']].map(
  (args) => ({
    args,
  }),
);
TPM12_CASES.push({ args: ['-cs', '-u', '-ea'] }, { args: ['-ea'], prep: 'deactivated' });
const TPM2_CASES: Case[] = [[], ['-n'], ['-s'], ['-d'], ['-o']].map((args) => ({ args }));
TPM2_CASES.push({ args: ['-cs', '-u'] }, { args: [], env: true });
const casesOn = (server: Server, all: Case[]) =>
  server === 'swtpm' ? all : all.filter((c) => c.args.length === 0 || c.args.includes('-u'));
const key = (c: Case) =>
  `${c.args.join(' ')}${c.prep ? ` (${c.prep})` : ''}${c.env ? ' (env)' : ''}`;

/** swtpm_bios and ours on the same fresh TPM: same output, same commands. */
async function compareOn(b: Bench, server: Server, tpm2: boolean, c0: Case) {
  const c1 = { ...c0, args: [...(tpm2 ? ['--tpm2'] : []), ...c0.args] };
  const theirs = await b.run('c', c1);
  const ours = await b.run('ts', c1);
  const where = `${server} ${key(c1)}`;
  assert.deepEqual(comparable(ours.out), comparable(theirs.out), where);
  const norm = (buf: Buffer) => {
    const x = Buffer.from(buf);
    const cc = x.readUInt32BE(6);
    if (tpm2 && cc === 0x129) x.fill(0, x.length - 20); // the random new platform auth
    // IncrementalSelfTest: swtpm_bios 0.7.1 tests SHA-1, 0.10 (and we) SHA-256.
    if (tpm2 && cc === 0x142) x.writeUInt16BE(0, x.length - 2);
    return x.toString('hex');
  };
  assert.deepEqual(ours.cmds.map(norm), theirs.cmds.map(norm), where);
  assert.ok(theirs.cmds.length > 0 || c0.args.includes('-n') || c0.args.includes('-d'), where);
  for (const cmd of ours.cmds) {
    if (tpm2 && cmd.readUInt32BE(6) === 0x142) {
      assert.equal(cmd.subarray(10).toString('hex'), '00000001000b');
    }
  }
  return theirs.out;
}

async function allCases(server: Server, tpm2: boolean) {
  const b = await bench(server, tpm2);
  try {
    const codes: Record<string, Out> = {};
    const cases = [
      ...casesOn(server, tpm2 ? TPM2_CASES : TPM12_CASES),
      { args: [], prep: 'started' as const },
    ];
    for (const c of cases) codes[key(c)] = await compareOn(b, server, tpm2, c);
    return codes;
  } finally {
    await b.close();
  }
}

for (const server of ['swtpm', 'tswtpm'] as const) {
  test(`TPM 1.2 on ${server}: same output, exit code and commands`, { skip: !HAVE }, async () => {
    const r = await allCases(server, false);
    assert.equal(r['']?.code, 0);
    assert.equal(r['-cs -u -ea']?.code, 0); // a fresh libtpms TPM 1.2 is not deactivated
    assert.equal(
      r[' (started)']?.stderr.split('\n')[0],
      'TPM_Startup(0x01) returned error code 0x00000026',
    );
    assert.equal(r[' (started)']?.code, 128);
    if (server === 'swtpm') {
      assert.deepEqual(r['-ea (deactivated)'], {
        stdout: 'TPM requires a reset\n',
        stderr: '',
        code: 129,
      });
    }
  });

  test(`TPM 2 on ${server}: same output, exit code and commands`, { skip: !HAVE }, async () => {
    const r = await allCases(server, true);
    assert.equal(r['']?.code, 0);
    assert.equal(r['-cs -u']?.code, 0);
    assert.deepEqual(r[' (started)'], {
      stdout: 'TPM2_Startup returned error code 0x00000100\n',
      stderr: '',
      code: 128,
    });
    if (server === 'swtpm') {
      assert.equal(r['-s']?.code, 128); // no saved state
      assert.equal(r[' (env)']?.code, 0); // TCSD_* variables, localhost
    }
  });
}
