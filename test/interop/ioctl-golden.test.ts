/**
 * tswtpm_ioctl against Debian's swtpm_ioctl 0.7.1: every invocation runs with both
 * tools and must give the same stdout, stderr and exit code. Stateful scripts run on
 * two identical servers (one per tool) of each server kind: Debian's swtpm and ours.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type Swtpm,
  type SwtpmOptions,
  TSWTPM,
  type ToolResult,
  freePort,
  runIoctl,
  startSwtpm,
} from '../helpers/start-swtpm.js';

const work = mkdtempSync(join(tmpdir(), 'ioctl-golden-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Step {
  readonly args: readonly string[];
  readonly input?: Uint8Array;
  /** Files (relative to each tool's cwd) whose sizes must match afterwards. */
  readonly files?: readonly string[];
}

function dirFor(name: string): string {
  const d = join(work, name);
  rmSync(d, { recursive: true, force: true });
  return mkdtempSync(`${d}-`);
}

function setupFiles(dir: string): void {
  writeFileSync(join(dir, 'garbage.bin'), 'this is not a state blob\n');
}

function size(p: string): number | undefined {
  try {
    return statSync(p).size;
  } catch {
    return undefined;
  }
}

async function both(
  args: readonly string[],
  opts: { cwdC?: string; cwdT?: string; input?: Uint8Array } = {},
): Promise<[ToolResult, ToolResult]> {
  const c = await runIoctl('c', args, { ...(opts.cwdC ? { cwd: opts.cwdC } : {}), ...inp(opts) });
  const t = await runIoctl('ts', args, { ...(opts.cwdT ? { cwd: opts.cwdT } : {}), ...inp(opts) });
  return [c, t];
}

const inp = (o: { input?: Uint8Array }) => (o.input ? { input: o.input } : {});

/**
 * docs/compat.md ("tswtpm_ioctl"): `--lock-storage N` is swtpm_ioctl 0.8+'s option, which
 * 0.7.1 lacks, so our help text has two more lines and the option itself is ours alone.
 */
const LOCK_STORAGE_HELP = /--lock-storage <retries>\n[^\n]*\n[^\n]*\n/;
/** compat.md: the version line names tswtpm_ioctl and its own version. */
const OUR_VERSION =
  /^TPM emulator control tool version .* \(tswtpm_ioctl, compatible with swtpm_ioctl 0\.7\.1\)$/m;
const THEIR_VERSION = 'TPM emulator control tool version 0.7.1, Copyright (c) 2015 IBM Corp.';
/** Ours, with the two allowed differences (help line, version line) replaced by theirs. */
const withoutLockStorageHelp = (r: ToolResult): ToolResult => {
  const text = (x: string) => x.replace(LOCK_STORAGE_HELP, '').replace(OUR_VERSION, THEIR_VERSION);
  return { ...r, stdout: text(r.stdout), stderr: text(r.stderr) };
};

const STDIN = Buffer.alloc(5000, 0x61);

/** Recipe (a) of clients.md §4 plus error paths; the state evolves step by step. */
const SCRIPT: readonly Step[] = [
  { args: ['-c'] },
  { args: ['-e'] },
  { args: ['-g'] },
  { args: ['-b', '0'] },
  { args: ['--info', '1'] },
  { args: ['--info', '3'] },
  { args: ['-v'] },
  { args: ['-C'] },
  { args: ['-h', 'abc'] },
  { args: ['--save', 'permanent', 'p0.bin'], files: ['p0.bin'] },
  { args: ['-i'] },
  { args: ['-e'] },
  { args: ['-b', '4096'] },
  { args: ['--info', '4'] },
  { args: ['--info', '0x8'] },
  { args: ['-l', '3'] },
  { args: ['-l', '5'] },
  { args: ['-l', 'abc'] },
  { args: ['-r', '3'] },
  { args: ['-r', '0'] },
  { args: ['-h', 'hello'] },
  { args: ['-e'] },
  { args: ['-h', '-'], input: STDIN },
  { args: ['-v'] },
  { args: ['--save', 'permanent', 'perm.bin'], files: ['perm.bin'] },
  { args: ['--save', 'volatile', 'vol.bin'], files: ['vol.bin'] },
  { args: ['--save', 'savestate', 'save.bin'], files: ['save.bin'] },
  { args: ['--save', 'bogus', 'x.bin'], files: ['x.bin'] },
  { args: ['--save', 'permanent', 'nodir/x.bin'] },
  { args: ['-C'] },
  { args: ['--stop'] },
  { args: ['-e'] },
  { args: ['-b', '4096'] },
  { args: ['--load', 'permanent', 'perm.bin'] },
  { args: ['--load', 'volatile', 'vol.bin'] },
  { args: ['--load', 'volatile', 'doesnotexist.bin'] },
  { args: ['--load', 'bogus', 'perm.bin'] },
  { args: ['--load', 'permanent', 'garbage.bin'] },
  { args: ['-i'] },
  { args: ['-e'] },
  { args: ['--lock-storage', '3'] },
  { args: ['-c', '-e'] },
  { args: ['--c'] },
  { args: [] },
  { args: ['-s'] },
];

/** The same over a TCP control port. */
const TCP_SCRIPT: readonly Step[] = [
  { args: ['-c'] },
  { args: ['-i'] },
  { args: ['-e'] },
  { args: ['--info', '3'] },
  { args: ['-b', '0'] },
  { args: ['-s'] },
];

async function runScript(kind: string, opts: SwtpmOptions, script: readonly Step[]): Promise<void> {
  const servers: Swtpm[] = [];
  try {
    servers.push(await startSwtpm(opts), await startSwtpm(opts));
    const [a, b] = servers as [Swtpm, Swtpm];
    const cwdC = dirFor(`${kind}-c`);
    const cwdT = dirFor(`${kind}-ts`);
    setupFiles(cwdC);
    setupFiles(cwdT);
    for (const step of script) {
      const c = await runIoctl('c', [...a.ioctlArgs, ...step.args], { cwd: cwdC, ...inp(step) });
      const t = await runIoctl('ts', [...b.ioctlArgs, ...step.args], { cwd: cwdT, ...inp(step) });
      if (step.args[0] === '--lock-storage') {
        // Allowed difference (compat.md): 0.7.1's tool does not know the option. Ours
        // sends CMD_LOCK_STORAGE, which 0.7.1's server answers as unknown (0x0a).
        assert.match(c.stderr, /unrecognized option '--lock-storage'/);
        const wantOk = kind.startsWith('tswtpm');
        assert.equal(t.code, wantOk ? 0 : 1, `${kind}: --lock-storage exit code`);
        if (!wantOk) assert.match(t.stderr, /TPM result from PTM_LOCK_STORAGE: 0xa/);
        continue;
      }
      assert.deepEqual(withoutLockStorageHelp(t), c, `${kind}: ${step.args.join(' ')}`);
      for (const f of step.files ?? []) {
        assert.equal(size(join(cwdT, f)), size(join(cwdC, f)), `${kind}: size of ${f}`);
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}

/**
 * Debian's swtpm_ioctl run against tswtpm prints what it prints against Debian's swtpm,
 * step by step through the same script. The one allowed difference is the capability
 * mask (docs/compat.md: CMD_LOCK_STORAGE is advertised, as in swtpm 0.8+).
 */
async function crossServers(opts: SwtpmOptions, script: readonly Step[]): Promise<void> {
  const servers: Swtpm[] = [];
  try {
    servers.push(await startSwtpm(opts), await startSwtpm({ ...opts, command: TSWTPM }));
    const [theirs, ours] = servers as [Swtpm, Swtpm];
    const cwdA = dirFor('cross-swtpm');
    const cwdB = dirFor('cross-tswtpm');
    setupFiles(cwdA);
    setupFiles(cwdB);
    for (const step of script) {
      const a = await runIoctl('c', [...theirs.ioctlArgs, ...step.args], {
        cwd: cwdA,
        ...inp(step),
      });
      const b = await runIoctl('c', [...ours.ioctlArgs, ...step.args], { cwd: cwdB, ...inp(step) });
      if (step.args.length === 1 && step.args[0] === '-c') {
        assert.equal(a.stdout, 'ptm capability is 0xffff\n');
        assert.equal(b.stdout, 'ptm capability is 0x1ffff\n');
        continue;
      }
      assert.deepEqual(b, a, `swtpm_ioctl ${step.args.join(' ')}`);
      for (const f of step.files ?? []) {
        assert.equal(size(join(cwdB, f)), size(join(cwdA, f)), `size of ${f}`);
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}

const KINDS: ReadonlyArray<[string, SwtpmOptions]> = [
  ['debian', {}],
  ['tswtpm', { command: TSWTPM }],
];

describe('tswtpm_ioctl = swtpm_ioctl', () => {
  for (const [kind, base] of KINDS) {
    it(`recipe (a) over a Unix control socket, ${kind} server`, async () => {
      await runScript(`${kind}-unix`, { ...base, ctrl: 'unix', server: 'tcp' }, SCRIPT);
    });
    it(`over a TCP control port, ${kind} server`, async () => {
      await runScript(`${kind}-tcp`, { ...base, ctrl: 'tcp', server: 'tcp' }, TCP_SCRIPT);
    });
  }

  it('Debian swtpm_ioctl prints the same against tswtpm as against swtpm (Unix)', async () => {
    await crossServers({ ctrl: 'unix', server: 'tcp' }, SCRIPT);
  });
  it('Debian swtpm_ioctl prints the same against tswtpm as against swtpm (TCP)', async () => {
    await crossServers({ ctrl: 'tcp', server: 'tcp' }, TCP_SCRIPT);
  });

  it('argument errors, help, version and connection failures', async () => {
    const refused = await freePort();
    const cases: string[][] = [
      [],
      ['-c'],
      ['--help'],
      ['--version'],
      ['-x', '--version'],
      ['-l', '5'],
      ['-l', '-1'],
      ['-l'],
      ['-l=3', '-c'],
      ['-b', 'x'],
      ['--info', 'x'],
      ['--info', '1 '],
      ['-t'],
      ['-sa'],
      ['-i=3'],
      ['-c', '-c'],
      ['-c', '-l', '3'],
      ['--save', 'permanent'],
      ['--save', 'bogus', 'x'],
      ['--tcp', `:${refused}`, '-c'],
      ['--tcp', `127.0.0.1:${refused}`, '-i'],
      ['--tcp', '127.0.0.1', '-c'],
      ['--tcp', '127.0.0.1:70000', '-c'],
      ['--tcp', ':abc', '-c'],
      ['--tcp', 'h:', '-c'],
      ['--tcp', '', '-c'],
      ['--tcp', 'nohost.invalid:1', '-c'],
      ['--unix', join(work, 'nonexistent.sock'), '-c'],
      ['--unix', work, '-c'],
      ['--unix', `/tmp/${'a'.repeat(110)}`, '-c'],
      ['-c', join(work, 'no-such-device')],
      ['-c', '--tpm-device', join(work, 'no-such-device'), '/dev/zero'],
      ['-c', '/dev/zero'],
    ];
    for (const args of cases) {
      const [c, t] = await both(args);
      assert.deepEqual(withoutLockStorageHelp(t), c, args.join(' '));
    }
  });
});

/** A control server that answers every first read of a connection with fixed bytes. */
async function fakeServer(
  reply: string | 'close' | 'silent',
): Promise<{ path: string; close(): void }> {
  const path = join(work, `fake-${Math.random().toString(16).slice(2)}.sock`);
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      if (reply === 'close') s.end();
      else if (reply !== 'silent') s.end(Buffer.from(reply, 'hex'));
    });
  });
  await new Promise<void>((r) => srv.listen(path, r));
  return {
    path,
    close: () => {
      srv.close();
    },
  };
}

describe('tswtpm_ioctl = swtpm_ioctl on odd server answers', () => {
  let dir: string;
  before(() => {
    dir = dirFor('fake');
    writeFileSync(join(dir, 'in.bin'), 'hello\n');
  });

  const cases: Array<[string, string[]]> = [
    ['close', ['-c']],
    ['0000000a', ['-c']],
    ['close', ['-i']],
    ['00', ['-i']],
    ['00000000', ['-e']],
    ['00000000', ['-b', '0']],
    ['0000000000000001', ['-g']],
    ['close', ['--info', '1']],
    ['000000000000000200000004414243440000', ['--info', '1']],
    ['0000000000000000', ['--save', 'permanent', 'o1.bin']],
    ['00000001000000000000000a0000000a', ['--save', 'permanent', 'o2.bin']],
    [`00000000000000000000000a0000000a${'78'.repeat(50)}`, ['--save', 'permanent', 'o3.bin']],
    ['close', ['--load', 'permanent', 'in.bin']],
    ['0000', ['--load', 'permanent', 'in.bin']],
    ['000000010000', ['--load', 'permanent', 'in.bin']],
  ];
  for (const [reply, args] of cases) {
    it(`${reply.slice(0, 40)} → ${args.join(' ')}`, async () => {
      const srv = await fakeServer(reply);
      try {
        const [c, t] = await both(['--unix', srv.path, ...args], { cwdC: dir, cwdT: dir });
        assert.deepEqual(t, c);
      } finally {
        srv.close();
      }
    });
  }

  it('a server that never answers: both give up after 20 s', { timeout: 60000 }, async () => {
    const srv = await fakeServer('silent');
    try {
      const args = ['--unix', srv.path, '-c'];
      const start = Date.now();
      const [c, t] = await Promise.all([runIoctl('c', args), runIoctl('ts', args)]);
      assert.deepEqual(t, c);
      assert.equal(c.stderr, 'Could not execute PTM_GET_CAPABILITY: Connection timed out\n');
      assert.ok(Date.now() - start >= 19500);
    } finally {
      srv.close();
    }
  });
});
