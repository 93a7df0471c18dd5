import assert from 'node:assert/strict';
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlClient, TpmClient } from '../../src/client/index.js';
import { FdChannel } from '../../src/transport/fd-channel.js';
import * as L from '../../src/transport/libc.js';
import { TSWTPM_BIN, tempDir } from '../helpers/procs.js';
import { haveSwtpm } from '../helpers/spawn-tswtpm.js';

// Every fd an option names reaches the process that serves, at any number (3..7
// here), with and without -d; `--pid fd=N` names a file that is removed at exit
// (issue 14.3; swtpm resolves it through /proc/self/fd/N). Each case runs against
// Debian's swtpm 0.7.1 too.

const work = tempDir();
after(() => work.remove());
const GET_RANDOM = Buffer.from('80010000000c0000017b0008', 'hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Program = 'tswtpm' | 'swtpm';

interface Ctx {
  readonly dir: string;
  readonly n: number;
  /** Parent fds to close once the server has its copies. */
  readonly mine: number[];
  ctrlPath: string;
}

interface Case {
  readonly name: string;
  /** Arguments, and the parent's fd to place at `ctx.n`. */
  setup(ctx: Ctx): { args: string[]; fd: number };
  /** Talks to the server, then makes it shut down. */
  exercise(ctx: Ctx, servingPid: number): Promise<void>;
}

/** A listening Unix socket (fd) at `path`. */
function listeningFd(path: string): number {
  const fd = L.socket(L.SOCK_STREAM);
  L.bind(fd, path);
  L.listen(fd, 1);
  return fd;
}

/** One request/response on a raw socket fd (our end of a socketpair). */
async function exchange(sock: net.Socket, req: Buffer, min: number): Promise<Buffer> {
  let got = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${min}-byte reply`)), 10000);
    const onData = (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (got.length >= min) {
        sock.off('data', onData);
        clearTimeout(timer);
        resolve(got);
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
    sock.write(req);
  });
}

async function getRandomOk(tpm: TpmClient): Promise<void> {
  const rsp = Buffer.from(await tpm.transmit(GET_RANDOM));
  assert.equal(rsp.readUInt32BE(6), 0, 'GetRandom succeeds');
  await tpm.close();
}

const shutdown = (ctx: Ctx) => new ControlClient({ path: ctx.ctrlPath }).shutdown();
const ctrlArgs = (ctx: Ctx) => ['--ctrl', `type=unixio,path=${ctx.ctrlPath}`];
const pidFile = (ctx: Ctx) => ['--pid', `file=${join(ctx.dir, 'pid')}`];

const keyCase = (opt: '--key' | '--migration-key', sub: 'fd' | 'pwdfd'): Case => ({
  name: `${opt} ${sub}=`,
  setup(ctx) {
    const f = join(ctx.dir, 'key');
    writeFileSync(f, sub === 'fd' ? '00112233445566778899aabbccddeeff' : 'a password');
    return {
      args: [...ctrlArgs(ctx), ...pidFile(ctx), opt, `${sub}=${ctx.n}`],
      fd: openSync(f, 'r'),
    };
  },
  async exercise(ctx) {
    const cfg = await new ControlClient({ path: ctx.ctrlPath }).getConfig();
    assert.equal(opt === '--key' ? cfg.fileKey : cfg.migrationKey, true, 'the key was read');
    await shutdown(ctx);
  },
});

const CASES: readonly Case[] = [
  {
    name: '--pid fd=',
    setup(ctx) {
      return {
        args: [...ctrlArgs(ctx), '--pid', `fd=${ctx.n}`],
        fd: openSync(join(ctx.dir, 'pid'), 'w'),
      };
    },
    async exercise(ctx) {
      await shutdown(ctx);
    },
  },
  {
    name: '--fd (connected data socket)',
    setup(ctx) {
      const [a, b] = L.socketpair(L.SOCK_STREAM);
      ctx.mine.push(a);
      return { args: [...ctrlArgs(ctx), ...pidFile(ctx), '--fd', String(ctx.n)], fd: b };
    },
    async exercise(ctx) {
      const sock = new net.Socket({ fd: ctx.mine.shift()!, readable: true, writable: true });
      const rsp = await exchange(sock, GET_RANDOM, 10);
      assert.equal(rsp.readUInt32BE(6), 0);
      await shutdown(ctx);
      sock.destroy();
    },
  },
  {
    // swtpm reads the fd with read(): one message is one command. Served with node:net
    // before, such an fd was refused at start-up.
    name: '--fd (connected SOCK_SEQPACKET socket)',
    setup(ctx) {
      const [a, b] = L.socketpair(L.SOCK_SEQPACKET);
      ctx.mine.push(a);
      return { args: [...ctrlArgs(ctx), ...pidFile(ctx), '--fd', String(ctx.n)], fd: b };
    },
    async exercise(ctx) {
      const ch = new FdChannel(ctx.mine.shift()!);
      for (let i = 0; i < 2; i++) {
        await ch.write(GET_RANDOM);
        const m = await ch.read(10000);
        assert.ok(m !== null, 'an answer');
        assert.equal(m.data.readUInt32BE(6), 0, 'GetRandom succeeds');
      }
      await shutdown(ctx);
      ch.close();
    },
  },
  {
    name: '--server type=unixio,fd= (listening)',
    setup(ctx) {
      const fd = listeningFd(join(ctx.dir, 'tpm.sock'));
      return {
        args: [...ctrlArgs(ctx), ...pidFile(ctx), '--server', `type=unixio,fd=${ctx.n}`],
        fd,
      };
    },
    async exercise(ctx) {
      await getRandomOk(new TpmClient({ path: join(ctx.dir, 'tpm.sock') }));
      await shutdown(ctx);
    },
  },
  {
    name: '--ctrl type=unixio,fd= (listening)',
    setup(ctx) {
      const fd = listeningFd(ctx.ctrlPath);
      return { args: [...pidFile(ctx), '--ctrl', `type=unixio,fd=${ctx.n}`], fd };
    },
    async exercise(ctx) {
      assert.ok((await new ControlClient({ path: ctx.ctrlPath }).getCapability()).mask > 0);
      await shutdown(ctx);
    },
  },
  {
    name: '--ctrl type=unixio,clientfd=',
    setup(ctx) {
      const [a, b] = L.socketpair(L.SOCK_STREAM);
      ctx.mine.push(a);
      return { args: [...pidFile(ctx), '--ctrl', `type=unixio,clientfd=${ctx.n}`], fd: b };
    },
    async exercise(ctx) {
      const sock = new net.Socket({ fd: ctx.mine.shift()!, readable: true, writable: true });
      const caps = await exchange(sock, Buffer.from('00000001', 'hex'), 8);
      assert.equal(caps.readUInt32BE(0), 0, 'GET_CAPABILITY over the passed client fd');
      const rsp = await exchange(sock, Buffer.from('00000003', 'hex'), 4);
      assert.equal(rsp.readUInt32BE(0), 0);
      sock.destroy();
    },
  },
  keyCase('--key', 'fd'),
  keyCase('--key', 'pwdfd'),
  keyCase('--migration-key', 'fd'),
  keyCase('--migration-key', 'pwdfd'),
];

/** The process is gone (or a zombie nobody reaps). */
function gone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function until(what: string, cond: () => boolean, ms = 10000): Promise<void> {
  for (let t = 0; !cond(); t += 20) {
    if (t > ms) assert.fail(`${what} (after ${ms} ms)`);
    await sleep(20);
  }
}

function launch(program: Program, args: string[], n: number, fd: number): ChildProcess {
  const stdio: StdioOptions = ['ignore', 'ignore', 'pipe'];
  for (let i = 3; i <= n; i++) stdio.push(i === n ? fd : 'ignore');
  const [file, pre] = program === 'swtpm' ? ['swtpm', []] : [process.execPath, [TSWTPM_BIN]];
  return spawn(file, [...pre, 'socket', ...args], { stdio });
}

async function runCase(program: Program, c: Case, n: number, daemon: boolean): Promise<void> {
  const dir = join(
    work.path,
    `${program}-${daemon ? 'd' : 'f'}-${n}-${c.name.replace(/\W+/g, '')}`,
  );
  mkdirSync(join(dir, 'state'), { recursive: true });
  const ctx: Ctx = { dir, n, mine: [], ctrlPath: join(dir, 'ctrl.sock') };
  const { args, fd } = c.setup(ctx);
  const all = [
    '--tpm2',
    '--tpmstate',
    `dir=${join(dir, 'state')}`,
    '--flags',
    'not-need-init,startup-clear',
    ...args,
    ...(daemon ? ['-d'] : []),
  ];
  const child = launch(program, all, n, fd);
  closeSync(fd);
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  const pidPath = join(dir, 'pid');
  if (daemon) assert.equal(await exited, 0, `the launcher exits 0: ${stderr}`);
  // Ready: the pid file is written after the channels listen (swtpm and tswtpm).
  await until('the pid file is written', () => {
    if (child.exitCode !== null && child.exitCode !== 0 && !daemon) return true;
    return existsSync(pidPath) && /^\d+\s*$/.test(readFileSync(pidPath, 'utf8'));
  });
  const pid = Number.parseInt(readFileSync(pidPath, 'utf8'), 10);
  if (daemon) assert.notEqual(pid, child.pid, 'the pid file names the daemon');
  else assert.equal(pid, child.pid);
  await c.exercise(ctx, pid);
  await until('the server exits after CMD_SHUTDOWN', () => gone(pid));
  if (!daemon) assert.equal(await exited, 0, stderr);
  await until('the pid file is removed', () => !existsSync(pidPath));
  for (const f of ctx.mine) closeSync(f);
}

const programs: Program[] = haveSwtpm ? ['tswtpm', 'swtpm'] : ['tswtpm'];
for (const program of programs) {
  for (const daemon of [false, true]) {
    test(`${program}${daemon ? ' -d' : ''}: every option's fd reaches the server`, async () => {
      let n = 3;
      for (const c of CASES) {
        await runCase(program, c, n, daemon).catch((e: Error) => {
          throw new Error(`${c.name} at fd ${n}: ${e.message}`);
        });
        n = n === 7 ? 3 : n + 1;
      }
    });
  }
  test(`${program}: --pid fd=N with -d at each N in 3..7`, async () => {
    for (let n = 3; n <= 7; n++) await runCase(program, CASES[0]!, n, true);
  });
}
