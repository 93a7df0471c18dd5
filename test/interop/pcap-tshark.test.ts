// `tswtpm socket --pcap` read back by tshark (Wireshark's CLI): packet count, direction
// (port 2321 is the TPM), TCP flags, and the payload bytes equal to what the client sent
// and received; file sizes and modes as swtpm master's test_tpm2_pcap checks them
// (runtime-features.md §4.4); IPv4/TCP checksums validated by tshark with `checksums`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { getRandom2, startup2 } from '../../src/protocol/tpm/commands.js';
import {
  RawConn,
  type Started,
  TSWTPM_BIN,
  canConnect,
  ctrlGetCapability,
  ctrlInit,
  ctrlShutdown,
  freePort,
  run,
  sleep,
  startTpm,
  stopAll,
  tempDir,
  tpmOnce,
} from '../helpers/spawn-tswtpm.js';

after(stopAll);

const haveTshark = spawnSync('tshark', ['--version']).status === 0;

interface Pkt {
  src: number;
  dst: number;
  flags: number;
  payload: string;
  proto: string;
  ipOk: string;
  tcpOk: string;
}

function tshark(file: string): Pkt[] {
  const fields = ['tcp.srcport', 'tcp.dstport', 'tcp.flags', 'tcp.payload', '_ws.col.Protocol'];
  const r = spawnSync(
    'tshark',
    [
      '-r',
      file,
      '-o',
      'ip.check_checksum:TRUE',
      '-o',
      'tcp.check_checksum:TRUE',
      '-T',
      'fields',
      ...[...fields, 'ip.checksum.status', 'tcp.checksum.status'].flatMap((f) => ['-e', f]),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => {
      const [src, dst, flags, payload, proto, ipOk, tcpOk] = l.split('\t');
      return {
        src: Number(src),
        dst: Number(dst),
        flags: Number(flags),
        payload: payload ?? '',
        proto: proto ?? '',
        ipOk: ipOk ?? '',
        tcpOk: tcpOk ?? '',
      };
    });
}

const mode = (f: string) => statSync(f).mode & 0o777;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function stopped(t: Started): Promise<void> {
  assert.equal(await ctrlShutdown(t.ctrl!), 0);
  const e = await t.p.wait(5000);
  assert.equal(e.code, 0);
}

describe('--pcap read by tshark', { skip: !haveTshark && 'tshark is not installed' }, () => {
  const dir = tempDir();
  const file = join(tempDir('tswtpm-pcap-'), 'tpm.pcapng');

  it('records commands and responses as one TCP connection to port 2321', async () => {
    const t = await startTpm({ dir, extra: ['--pcap', `file=${file},mode=0654`] });
    assert.equal(await ctrlInit(t.ctrl!), 0);
    assert.equal(mode(file), 0o654);
    assert.equal(statSync(file).size, 312);
    const startup = startup2(0);
    const rsp1 = await tpmOnce(t.data!, startup);
    assert.equal(hex(rsp1), '80010000000a00000000');
    assert.equal(statSync(file).size, 508);
    // A command with the TCG send-command prefix: recorded as read, its reply without
    // the prefix's length and trailer.
    const rand = getRandom2(8);
    const prefixed = Buffer.concat([Buffer.from([0, 0, 0, 8, 0, 0, 0, 0, 12]), rand]);
    const c = await RawConn.connect(t.data!);
    c.write(prefixed);
    // Length, GetRandom's reply (10 + 2 + 8 bytes), four zero bytes.
    const rsp2 = await c.read(28);
    c.destroy();
    const inner = rsp2.subarray(4, rsp2.length - 4);
    await stopped(t);
    // + the automatic TPM2_Shutdown(SU_STATE) and its reply, then FIN, FIN|ACK, ACK.
    const p = tshark(file);
    assert.equal(p.length, 3 + 2 + 2 + 2 + 3);
    const port = p[0]!.src;
    assert.ok(port >= 50000 && port < 55000, String(port));
    const dirs = p.map((x) => (x.dst === 2321 ? 'c' : x.src === 2321 ? 't' : '?'));
    assert.deepEqual(dirs.join(''), 'ctcctctctctc');
    assert.deepEqual(
      p.map((x) => x.flags),
      [0x02, 0x12, 0x10, 0, 0, 0, 0, 0, 0, 0x01, 0x11, 0x10],
    );
    assert.equal(p[3]!.payload, hex(startup));
    assert.equal(p[4]!.payload, hex(rsp1));
    assert.equal(p[5]!.payload, hex(prefixed));
    assert.equal(p[6]!.payload, hex(inner));
    assert.equal(p[7]!.payload, '80010000000c000001450001');
    assert.equal(p[8]!.payload, '80010000000a00000000');
    // Wireshark's TPM dissector decodes the unprefixed records.
    for (const i of [3, 4, 7, 8]) assert.equal(p[i]!.proto, 'TPM', String(i));
    // 21 + 20 payload bytes: 108-byte records (1 and 2 bytes of padding).
    assert.equal(statSync(file).size, 508 + 108 + 108 + 196 + 264);
  });

  it('appends a new section; checksums (any value) are valid for tshark', async () => {
    const before = statSync(file).size;
    const t = await startTpm({ dir, extra: ['--pcap', `file=${file},mode=0633,checksums=false`] });
    assert.equal(await ctrlInit(t.ctrl!), 0);
    assert.equal(mode(file), 0o633);
    assert.equal(statSync(file).size, before + 312);
    await tpmOnce(t.data!, startup2(1));
    await stopped(t);
    const p = tshark(file);
    const second = p.slice(12);
    assert.equal(second.length, 3 + 2 + 2 + 3);
    for (const x of second) assert.deepEqual([x.ipOk, x.tcpOk], ['1', '1']);
    // Without checksums the fields are 0, which tshark flags as bad (status 0).
    for (const x of p.slice(0, 12)) assert.deepEqual([x.ipOk, x.tcpOk], ['0', '0']);
  });

  it('fd= with truncate starts over and sets the mode bits of the file', async () => {
    // The file is fd 3 of the child.
    const fd = openSync(file, 'r+');
    const ctrl = { port: await freePort() };
    const args = [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${dir}`,
      '--ctrl',
      `type=tcp,port=${ctrl.port}`,
    ];
    args.push('--pcap', 'fd=3,mode=0765,truncate');
    const child = spawn(process.execPath, [TSWTPM_BIN, ...args], {
      stdio: ['ignore', 'ignore', 'inherit', fd],
    });
    closeSync(fd);
    const exited = new Promise((r) => child.once('exit', r));
    try {
      while (!(await canConnect(ctrl))) await sleep(10);
      assert.equal(await ctrlInit(ctrl), 0);
      assert.equal(mode(file), 0o765);
      assert.equal(statSync(file).size, 312);
      assert.equal(await ctrlShutdown(ctrl), 0);
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
    }
    // Handshake, the automatic TPM2_Shutdown and its reply, FIN exchange.
    assert.equal(tshark(file).length, 3 + 2 + 3);
  });

  it('records the --flags startup-clear command tswtpm sends itself', async () => {
    const f = join(tempDir('tswtpm-pcap-'), 'startup.pcapng');
    const t = await startTpm({
      dir: tempDir(),
      flags: 'not-need-init,startup-clear',
      extra: ['--pcap', `file=${f}`],
    });
    // startTpm() returns once the control port takes connections, which the kernel does
    // from listen() on, before the pcap file is opened; an answer comes only from `ready`.
    await ctrlGetCapability(t.ctrl!);
    assert.equal(mode(f), 0o640);
    await stopped(t);
    const p = tshark(f);
    assert.equal(p[3]!.payload, '80010000000c000001440000');
    assert.equal(p[4]!.payload, '80010000000a00000000');
    assert.equal(readFileSync(f).length, 312 + 196 + 196 + 264);
  });

  it('a pcap file that cannot be opened: swtpm message, exit 1', async () => {
    const args = ['socket', '--tpm2', '--tpmstate', `dir=${tempDir()}`, '--ctrl', 'type=unixio'];
    args.push(`,path=${join(tempDir(), 'c')}`);
    const r = await run('tswtpm', [
      ...args.slice(0, -2),
      `${args.at(-2)}${args.at(-1)}`,
      '--pcap',
      'file=/nonexistent/x',
    ]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'tswtpm: Could not open pcap file for writing: No such file or directory\n',
    );
  });
});
