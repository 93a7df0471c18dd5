// The CUSE front end against a real kernel: a QEMU (TCG) guest boots Debian's kernel
// with an initramfs holding busybox, the fuse/cuse modules, node, this project,
// swtpm_ioctl and tpm2-tools (test/guest/build.sh). Its /init (test/guest/init) starts
// `tswtpm cuse -n vtpm0` and drives /dev/vtpm0; the results come back on the serial
// console as `@@ step| output` and `@@ step rc=N` lines, asserted here.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const QEMU = 'qemu-system-x86_64';
const skip =
  spawnSync(QEMU, ['--version']).status === 0
    ? false
    : `${QEMU} is not installed (apt install qemu-system-x86): the CUSE guest test needs TCG QEMU`;
/** Cache of the guest's system part across runs (see build.sh). */
const OUT = join(tmpdir(), `tswtpm-guest-${process.getuid?.() ?? 0}`);
/** Digest extended into PCR 16 by the guest (sha256 of "foo\n"). */
const DIGEST = 'b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c';

interface Step {
  lines: string[];
  rc: number | undefined;
}

function parseSerial(text: string): {
  steps: Map<string, Step>;
  marks: Set<string>;
  t: Map<string, number>;
} {
  const steps = new Map<string, Step>();
  const marks = new Set<string>();
  const t = new Map<string, number>();
  const step = (name: string): Step => {
    let s = steps.get(name);
    if (s === undefined) {
      s = { lines: [], rc: undefined };
      steps.set(name, s);
    }
    return s;
  };
  for (const raw of text.replace(/\r/g, '').split('\n')) {
    const at = raw.indexOf('@@ ');
    if (at < 0) continue;
    const line = raw.slice(at + 3);
    let m = /^([\w-]+)\| ?(.*)$/.exec(line);
    if (m) {
      step(m[1]!).lines.push(m[2]!);
      continue;
    }
    m = /^([\w-]+) rc=(\d+)$/.exec(line);
    if (m) {
      step(m[1]!).rc = Number(m[2]);
      continue;
    }
    m = /^T ([\w-]+) ([\d.]+)$/.exec(line);
    if (m) t.set(m[1]!, Number(m[2]));
    else marks.add(line);
  }
  return { steps, marks, t };
}

function runQemu(
  kernel: string,
  initrd: string,
  serial: string,
  ms: number,
): Promise<number | null> {
  const args = [
    ...['-machine', 'q35', '-accel', 'tcg', '-cpu', 'qemu64,+rdrand', '-m', '1024'],
    ...['-display', 'none', '-no-user-config', '-nodefaults', '-no-reboot'],
    ...['-serial', `file:${serial}`, '-kernel', kernel, '-initrd', initrd],
    ...['-append', 'console=ttyS0 panic=-1 quiet'],
  ];
  const q = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => {
    const timer = setTimeout(() => q.kill('SIGKILL'), ms);
    q.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

test(
  'tswtpm cuse in a QEMU guest: swtpm_ioctl and tpm2-tools on /dev/vtpm0',
  { skip, timeout: 600_000 },
  async (t) => {
    const t0 = performance.now();
    const build = spawnSync('bash', [join(ROOT, 'test/guest/build.sh'), OUT], { encoding: 'utf8' });
    assert.equal(build.status, 0, `guest build failed:\n${build.stderr}`);
    const kv = Object.fromEntries(
      (build.stdout.trim().split('\n').pop() ?? '')
        .split(' ')
        .map((p) => p.split('=') as [string, string]),
    );
    const t1 = performance.now();
    const serial = join(OUT, 'serial.log');
    rmSync(serial, { force: true });
    const code = await runQemu(kv.KERNEL!, kv.INITRD!, serial, 300_000);
    const t2 = performance.now();
    const text = existsSync(serial) ? readFileSync(serial, 'utf8') : '';
    const { steps, marks, t: times } = parseSerial(text);
    const out = (s: string) => steps.get(s)?.lines.join('\n') ?? '';
    const ok = (s: string) => assert.equal(steps.get(s)?.rc, 0, `${s} failed:\n${out(s)}`);
    t.diagnostic(
      `kernel ${kv.KVER}; build ${((t1 - t0) / 1000).toFixed(1)} s, QEMU start to exit ` +
        `${((t2 - t1) / 1000).toFixed(1)} s; guest clock: init ${times.get('init')} s, ` +
        `tswtpm cuse up in ${((times.get('started') ?? 0) - (times.get('start') ?? 0)).toFixed(2)} s, ` +
        `done at ${times.get('end')} s`,
    );
    assert.ok(marks.has('DONE'), `guest did not finish (qemu exit ${code}):\n${text.slice(-3000)}`);
    assert.equal(code, 0);

    // tswtpm cuse daemonizes once /dev/vtpm0 exists; a second one refuses the name.
    ok('start');
    assert.match(out('node'), /^c.* \/dev\/vtpm0$/);
    assert.equal(steps.get('again')?.rc, 1);
    assert.match(out('again'), /already exists/);

    // swtpm_ioctl: capabilities (0.8+ CUSE set), INIT, locality, established bit, hashing.
    assert.equal(out('cap'), 'ptm capability is 0x16fff');
    for (const s of ['init', 'locality', 'hash', 'reset']) ok(s);
    assert.equal(out('est0'), 'tpmEstablished is 0');
    assert.equal(out('est1'), 'tpmEstablished is 1'); // set by the HASH_START/DATA/END sequence
    assert.equal(out('est2'), 'tpmEstablished is 0'); // RESET_TPMESTABLISHED at locality 3

    // tpm2-tools through the device TCTI (partial reads: header first, then the rest).
    for (const s of ['startup', 'getrandom', 'pcrextend', 'pcrread', 'createprimary', 'flush'])
      ok(s);
    assert.match(out('getrandom'), /^[0-9a-f]{32}$/);
    const pcr = createHash('sha256')
      .update(Buffer.alloc(32))
      .update(Buffer.from(DIGEST, 'hex'))
      .digest('hex')
      .toUpperCase();
    assert.match(out('pcrread'), new RegExp(`16: 0x${pcr}`));
    assert.match(out('createprimary'), /value: ecc/); // a long command, run off the event loop

    // --save/--load in 3072-byte ioctl chunks; after STOP the TPM answers TPM_RC_FAILURE.
    for (const s of ['savep', 'savev', 'stop', 'loadp', 'loadv', 'init2']) ok(s);
    const volSize = Number(/(\d+) \/tmp\/volatile\.blob/.exec(out('sizes'))?.[1]);
    assert.ok(volSize > 2 * 3072, `volatile blob of ${volSize} bytes spans several chunks`);
    assert.equal(out('trace-savev').match(/"GET_STATEBLOB"/g)?.length, Math.ceil(volSize / 3072));
    assert.equal(out('trace-loadv').match(/"SET_STATEBLOB"/g)?.length, Math.ceil(volSize / 3072));
    assert.notEqual(steps.get('stopped')?.rc, 0);
    assert.match(out('stopped'), /0x101|0x00000101/);
    assert.match(out('pcrread2'), new RegExp(`16: 0x${pcr}`)); // restored from the blobs

    // read()/write() transfer modes (swtpm_ioctl does not use them).
    ok('blobrw');
    const rw = out('blobrw');
    assert.match(rw, /get result=0 totlength=(\d+) ioctl=3072 read=/);
    const [, tot, , read] = /totlength=(\d+) ioctl=(\d+) read=(\d+)/.exec(rw) ?? [];
    assert.equal(Number(read), Number(tot) - 3072);
    for (const k of ['stop', 'set-start', 'set-commit', 'init'])
      assert.match(rw, new RegExp(`${k} result=0`));
    assert.match(rw, new RegExp(`write bytes=${tot}`));
    assert.match(out('pcrread3'), new RegExp(`16: 0x${pcr}`));

    // PTM_SHUTDOWN: the device goes away, the process exits and removes its pid file.
    ok('shutdown');
    for (const m of ['vtpm0 removed', 'vtpm0 process exited', 'vtpm0 pid file removed']) {
      assert.ok(marks.has(m), m);
    }
    assert.match(out('log'), /CUSE TPM device \/dev\/vtpm0 created/);
    // SIGTERM: clean exit, device removed.
    ok('start1');
    assert.equal(out('cap1'), 'ptm capability is 0x16fff');
    assert.ok(marks.has('vtpm1 removed after SIGTERM'));
  },
);
