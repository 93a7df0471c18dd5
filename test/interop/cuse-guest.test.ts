// The CUSE front end against a real kernel: a QEMU (TCG) guest boots Debian's kernel
// with an initramfs holding busybox, the fuse/cuse modules, node, this project,
// swtpm_ioctl and tpm2-tools (test/guest/build.sh). Its /init (test/guest/init) starts
// `tswtpm cuse -n vtpm0` and drives /dev/vtpm0 with Debian's swtpm_ioctl and our
// tswtpm_ioctl (each invocation with both, compared here), tpm2-tools, and the client
// library's device transport; then `tswtpm chardev --vtpm-proxy` serves the kernel's
// /dev/tpmN (tpm_vtpm_proxy.ko); the results come back on the serial console as
// `@@ step| output` and `@@ step rc=N` lines, asserted here.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run, startTcp } from '../helpers/procs.js';
import {
  CASES,
  type Version,
  WRITE_KEY,
  type Written,
  initLine,
  permallName,
  writeGuestCases,
} from '../helpers/state-matrix.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const QEMU = 'qemu-system-x86_64';
const skip =
  spawnSync(QEMU, ['--version']).status === 0
    ? false
    : `${QEMU} is not installed (apt install qemu-system-x86): the CUSE guest test needs TCG QEMU`;
/** Cache of the guest's system part across runs (see build.sh). */
const OUT = join(tmpdir(), `tswtpm-guest-${process.getuid?.() ?? 0}`);
/**
 * The state-matrix cases the guest runs: one per distinct PTM_INIT result (the TCP test
 * runs them all; the device code behind CUSE is the same).
 */
const GUEST_CASES = {
  '1.2': ['pwdfile', 'wrong-key-size', 'truncated'],
  '2.0': ['pwdfile'],
} as const;
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
  'tswtpm cuse and chardev --vtpm-proxy in a QEMU guest: swtpm_ioctl = tswtpm_ioctl, tpm2-tools and the client library on the devices',
  { skip, timeout: 900_000 },
  async (t) => {
    const t0 = performance.now();
    // Intact states written on the host (by swtpm where installed), damaged per case.
    const extra = join(OUT, 'extra');
    rmSync(extra, { recursive: true, force: true });
    await writeGuestCases(extra, '/opt/extra', writeState, GUEST_CASES);
    const build = spawnSync('bash', [join(ROOT, 'test/guest/build.sh'), OUT, extra], {
      encoding: 'utf8',
    });
    assert.equal(build.status, 0, `guest build failed:\n${build.stderr}`);
    const kv = Object.fromEntries(
      (build.stdout.trim().split('\n').pop() ?? '')
        .split(' ')
        .map((p) => p.split('=') as [string, string]),
    );
    const t1 = performance.now();
    const serial = join(OUT, 'serial.log');
    rmSync(serial, { force: true });
    const code = await runQemu(kv.KERNEL!, kv.INITRD!, serial, 780_000);
    const t2 = performance.now();
    const text = existsSync(serial) ? readFileSync(serial, 'utf8') : '';
    const { steps, marks, t: times } = parseSerial(text);
    const out = (s: string) => steps.get(s)?.lines.join('\n') ?? '';
    const ok = (s: string) => assert.equal(steps.get(s)?.rc, 0, `${s} failed:\n${out(s)}`);
    t.diagnostic(
      `kernel ${kv.KVER}; build ${((t1 - t0) / 1000).toFixed(1)} s, QEMU start to exit ` +
        `${((t2 - t1) / 1000).toFixed(1)} s; guest clock: init ${times.get('init')} s, ` +
        `tswtpm cuse up in ${((times.get('started') ?? 0) - (times.get('start') ?? 0)).toFixed(2)} s, ` +
        `swtpm_ioctl + tswtpm_ioctl -c in ${((times.get('ioctl2') ?? 0) - (times.get('ioctl1') ?? 0)).toFixed(2)} s, ` +
        `client library part ${((times.get('sigterm') ?? 0) - (times.get('client') ?? 0)).toFixed(2)} s, ` +
        `vtpm-proxy up in ${((times.get('vp-up') ?? 0) - (times.get('vp') ?? 0)).toFixed(2)} s, ` +
        `exit after CMD_SHUTDOWN ${((times.get('vp-exited') ?? 0) - (times.get('vp-s') ?? 0)).toFixed(2)} s, ` +
        `done at ${times.get('end')} s`,
    );
    assert.ok(marks.has('DONE'), `guest did not finish (qemu exit ${code}):\n${text.slice(-3000)}`);
    assert.equal(code, 0);

    // tswtpm cuse daemonizes once /dev/vtpm0 exists; a second one refuses the name.
    ok('start');
    assert.match(out('node'), /^c.* \/dev\/vtpm0$/);
    assert.equal(steps.get('again')?.rc, 1);
    assert.match(out('again'), /already exists/);

    // Every invocation ran with Debian's swtpm_ioctl (c-STEP) and tswtpm_ioctl (t-STEP)
    // against the same device: same stdout, stderr (bytes and md5), exit code, and the
    // same FUSE requests (STEP-ops: OPEN, IOCTL <name> ×n, READ/WRITE ×n, RELEASE).
    const pairs = [...steps.keys()].filter((k) => k.startsWith('c-')).map((k) => k.slice(2));
    assert.ok(pairs.length > 50, `only ${pairs.length} compared steps`);
    for (const k of pairs) {
      const c = steps.get(`c-${k}`);
      const tt = steps.get(`t-${k}`);
      assert.ok(tt, `t-${k} missing`);
      assert.deepEqual(tt, c, `tswtpm_ioctl differs from swtpm_ioctl in ${k}`);
    }
    for (const k of steps.keys()) {
      if (k.startsWith('t-') && !k.startsWith('t-init2'))
        assert.ok(steps.has(`c-${k.slice(2)}`), k);
    }
    const c = (k: string) => out(`c-${k}`);
    const cerr = (k: string) => out(`c-${k}-err`);
    const rcOf = (k: string) => steps.get(`c-${k}`)?.rc;
    // (what they agreed on is what swtpm_ioctl does against tswtpm cuse)
    assert.equal(c('cap'), 'ptm capability is 0x16fff');
    assert.deepEqual(out('c-cap-ops').split('\n'), [
      '1 OPEN',
      '1 IOCTL GET_CAPABILITY',
      '1 RELEASE',
    ]);
    for (const k of ['init', 'locality', 'hash', 'reset', 'storevol'])
      assert.equal(rcOf(k), 0, `${k}: ${cerr(k)}`);
    assert.match(out('c-hash-ops'), /^2 IOCTL HASH_DATA$/m); // 5000 bytes: 4096 + 904
    assert.equal(c('est1'), 'tpmEstablished is 1'); // set by the HASH_START/DATA/END sequence
    assert.equal(cerr('reset-bad'), 'TPM result from PTM_RESET_TPMESTABLISHED: 0x3d');
    assert.equal(c('est2'), 'tpmEstablished is 0'); // RESET_TPMESTABLISHED at locality 3
    assert.equal(c('bufsize'), 'TPM buffersize: 4096\nminimum size  : 2808\nmaximum size  : 4096');
    assert.match(
      c('info'),
      /^\{"TPMSpecification":\{"family":"2.0".*"TPMAttributes":\{"manufacturer":"id:00001014"/,
    );

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

    // --save: PTM_GET_STATEBLOB in 3072-byte chunks, or (SWTPM_IOCTL_BUFFERSIZE=1000) one
    // ioctl and 1000-byte read()s. The permanent blobs of both tools are byte-identical
    // (the volatile state serialises the TPM's clock, so only its size is).
    for (const s of ['savep', 'savev', 'savev-read']) assert.equal(rcOf(s), 0, cerr(s));
    ok('cmp-perm');
    const size = (f: string) =>
      Number(new RegExp(`(\\d+) /tmp/${f}$`, 'm').exec(out('sizes'))?.[1]);
    const vol = size('c.vol');
    assert.ok(vol > 2 * 3072, `volatile blob of ${vol} bytes spans several chunks`);
    for (const f of ['t.vol', 'c.volr', 't.volr']) assert.equal(size(f), vol, f);
    assert.deepEqual(out('c-savev-ops').split('\n'), [
      '1 OPEN',
      `${Math.ceil(vol / 3072)} IOCTL GET_STATEBLOB`,
      '1 RELEASE',
    ]);
    assert.deepEqual(out('c-savev-read-ops').split('\n'), [
      '1 OPEN',
      '1 IOCTL GET_STATEBLOB',
      `${Math.ceil((vol - 3072) / 1000)} READ`,
      '1 RELEASE',
    ]);

    // STOP, then --load in 3072-byte PTM_SET_STATEBLOB chunks and (SWTPM_IOCTL_BUFFERSIZE)
    // through write(); tswtpm_ioctl's INIT resumes from them: PCR 16 is back.
    for (const s of ['stop', 'loadp', 'loadv', 'loadv-write']) {
      assert.equal(rcOf(s), 0, `${s}: ${cerr(s)}`);
    }
    ok('t-init2');
    assert.notEqual(steps.get('stopped')?.rc, 0);
    assert.match(out('stopped'), /0x101|0x00000101/);
    assert.match(out('pcrread2'), new RegExp(`16: 0x${pcr}`)); // restored from the blobs
    assert.deepEqual(out('c-loadv-ops').split('\n'), [
      '1 OPEN',
      `${Math.floor(vol / 3072) + 1} IOCTL SET_STATEBLOB`,
      '1 RELEASE',
    ]);
    assert.deepEqual(out('c-loadv-write-ops').split('\n'), [
      '1 OPEN',
      '1 IOCTL SET_STATEBLOB',
      `${Math.ceil(vol / 1000)} WRITE`,
      '1 IOCTL SET_STATEBLOB',
      '1 RELEASE',
    ]);

    // read()/write() transfer modes driven directly (blob-rw.js).
    ok('blobrw');
    const rw = out('blobrw');
    assert.match(rw, /get result=0 totlength=(\d+) ioctl=3072 read=/);
    const [, tot, , read] = /totlength=(\d+) ioctl=(\d+) read=(\d+)/.exec(rw) ?? [];
    assert.equal(Number(read), Number(tot) - 3072);
    for (const k of ['stop', 'set-start', 'set-commit', 'init'])
      assert.match(rw, new RegExp(`${k} result=0`));
    assert.match(rw, new RegExp(`write bytes=${tot}`));
    assert.match(out('pcrread3'), new RegExp(`16: 0x${pcr}`));

    // PTM_SHUTDOWN (swtpm_ioctl -s on vtpm0, tswtpm_ioctl -s on vtpm2): the device goes
    // away, the process exits and removes its pid file.
    assert.equal(rcOf('s'), 0);
    for (const m of ['vtpm0 removed', 'vtpm0 process exited', 'vtpm0 pid file removed']) {
      assert.ok(marks.has(m), m);
    }
    for (const m of ['vtpm2 removed', 'vtpm2 process exited']) assert.ok(marks.has(m), m);
    assert.match(out('log'), /CUSE TPM device \/dev\/vtpm0 created/);

    // The client library over /dev/vtpm2: ControlClient ioctls and TpmClient
    // write()/read() sharing one CuseDevice, then each on the device path.
    ok('start2');
    ok('client');
    const kv2 = Object.fromEntries(
      steps
        .get('client')!
        .lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    assert.equal(kv2.caps, '0x16fff');
    assert.equal(kv2.startup, '0x0');
    assert.match(kv2.getrandom ?? '', /^0x0 bytes=16 [0-9a-f]{32}$/);
    assert.equal(kv2.pcrextend, '0x0');
    for (const k of ['pcrread', 'pcrread-after-blobs', 'path-pcrread']) {
      assert.equal(kv2[k], '0x0 expected', k);
    }
    const [, p2, v2] = /permanent=(\d+) volatile=(\d+)/.exec(kv2.blobs ?? '') ?? [];
    assert.ok(Number(p2) > 0 && Number(v2) > 3072, kv2.blobs);
    assert.match(kv2.info ?? '', /^\{"TPMSpecification":\{"family":"2.0"/);
    assert.equal(kv2.established, 'true');
    assert.equal(kv2['established-after-reset'], 'false');
    assert.equal(kv2.buffersize, '{"bufferSize":4096,"minSize":2808,"maxSize":4096}');
    assert.equal(kv2.setdatafd, 'EINVAL ioctl PTM_SET_DATAFD');
    assert.equal(kv2['second-open'], 'EBUSY');
    assert.equal(kv2['path-established'], 'false');
    assert.equal(kv2.done, 'ok');

    // Undecodable state files on the CUSE device: PTM_INIT answers what swtpm 0.7.1
    // answers over its control socket (test/interop/state-errors-diff.test.ts), the file is
    // left as it was, and the reason reaches the --log file.
    const cuseCases = (v: Version) => [...GUEST_CASES[v], ...(v === '1.2' ? ['intact'] : [])];
    for (const v of ['1.2', '2.0'] as const) {
      const V = v === '2.0' ? 'v2' : 'v12';
      for (const c of cuseCases(v)) {
        const k = `se-${V}-${c}`;
        const expect = c === 'intact' ? '' : initLine(CASES.find((x) => x.name === c)!.init[v]);
        assert.equal(out(`${k}-expect`), expect, `${k}: the host laid out this case`);
        assert.equal(out(`${k}-err`), expect, `${k}: PTM_INIT over CUSE`);
        assert.equal(steps.get(k)?.rc, expect === '' ? 0 : 1, k);
        if (c === 'intact') continue;
        assert.ok(marks.has(`${k} unchanged`), `${k}: the permall is unchanged`);
        assert.equal(out(`${k}-files`).trim(), permallName(v), `${k}: no other state file`);
      }
      // PTM_INIT's reports reach the device's --log (issue 14 item 2: cuse wires them).
      const rc = v === '2.0' ? '0x101' : '0x21';
      const file = permallName(v).replace('.', '\\.');
      const reason = `cannot decode ${file} in dir:///tmp/se: state: HMAC verification failed`;
      assert.match(
        out(`se-log-${V}`),
        new RegExp(`^Could not start the TPM \\(result ${rc}\\): ${reason}`, 'm'),
      );
    }
    // not-need-init: exit 1, both lines in the log file (nothing on the terminal).
    assert.equal(steps.get('se-v12-nni')?.rc, 1, out('se-v12-nni'));
    assert.equal(out('se-v12-nni'), '');
    assert.match(
      out('se-v12-nni-log'),
      /^Could not start the TPM \(result 0x21\): cannot decode tpm-00\.permall in dir:\/\/\/tmp\/sen: state: HMAC/m,
    );
    assert.match(out('se-v12-nni-log'), /^Error: Could not initialize libtpms\.$/m);
    // --log level=5 on the CUSE device: libtpms' own TPM 1.2 trace in the log file, four
    // spaces in (its level 1); TPM 2's failure-mode message goes there too.
    assert.match(out('se-log-v12'), /^ {4}TPM_MainInit: Initialize the TPM crypto support$/m);
    assert.doesNotMatch(out('se-log-v12'), /^ {5}/m);
    assert.match(out('se-log-v2'), /^libtpms\/tpm2: Entering failure mode/m);
    assert.equal(out('se-out'), '', 'nothing on the terminal: all went to --log');

    // SIGTERM: clean exit, device removed.
    ok('start1');
    assert.equal(out('cap1'), 'ptm capability is 0x16fff');
    assert.ok(marks.has('vtpm1 removed after SIGTERM'));

    // --runas tpmuser (uid 4242, primary group 4242, supplementary group 4343).
    ok('startr');
    assert.equal(
      out('idsr')
        .split('\n')
        .map((l) => l.replace(/\s+/g, ' ').trim())
        .join('\n'),
      'Uid: 4242 4242 4242 4242\nGid: 4242 4242 4242 4242\nGroups: 4242 4343',
    );
    ok('initr');
    assert.equal(out('ownerr'), '4242:4242 /tmp/vtpmr\n4242:4242 /tmp/vtpmr/tpm2-00.permall');
    ok('stopr');
    assert.ok(marks.has('vtpmr removed'));

    // chardev --vtpm-proxy (TPM 2): swtpm's New TPM device line on stdout, nothing on
    // stderr; the kernel registered /dev/tpmN and /dev/tpmrmN.
    ok('vp-vtpmx');
    assert.match(out('vp-out'), /^New TPM device: \/dev\/tpm\d+ \(major\/minor = \d+\/\d+\)$/);
    assert.equal(out('vp-err'), '');
    assert.equal(out('vp-sys'), '2');
    ok('vp-nodes');
    // The kernel's first command was SET_LOCALITY(0) (vendor ordinal 0x20001000),
    // answered by tswtpm itself with success, and it came exactly once.
    assert.deepEqual(out('vp-log').split('\n'), [
      ' SWTPM_IO_Read: length 11',
      ' 80 02 00 00 00 0B 20 00 10 00 00 ',
      ' SWTPM_IO_Write: length 10',
      ' 80 01 00 00 00 0A 00 00 00 00 ',
    ]);
    assert.equal(out('vp-setloc'), '1');
    // startup-clear is implied: tswtpm sent TPM2_Startup(CLEAR) before serving, so a
    // raw Startup gets TPM_RC_INITIALIZE, which tpm2_startup accepts (rc 0).
    ok('vp-startup');
    assert.equal(out('vp-startup-raw'), '80010000000a00000100');
    for (const s of ['vp-getrandom', 'vp-pcrextend', 'vp-pcrread']) ok(s);
    assert.match(out('vp-getrandom'), /^[0-9a-f]{32}$/);
    assert.match(out('vp-pcrread'), new RegExp(`16: 0x${pcr}`));
    // TPM2_PCR_Read(sha256, 17) in one write(): the answer swtpm's test expects (the
    // update counter aside, which the PCR 16 extend moved).
    assert.match(
      out('vp-pcrread17'),
      /^80010000003e00000000[0-9a-f]{8}00000001000b03000002000000010020(ff){32}$/,
    );
    // The UnixIO control channel serves alongside; both tools agree.
    ok('vp-c-g');
    assert.equal(out('vp-t-g'), out('vp-c-g'));
    assert.match(out('vp-c-g'), /^ptm configuration flags: 0x[0-9a-f]+$/);
    assert.equal(out('vp-c-c'), 'ptm capability is 0x1ffff');
    assert.match(out('vp-state'), /tpm2-00\.permall/);
    // CMD_SHUTDOWN ends the process (exit 0, pid file removed) and so the device.
    ok('vp-s');
    assert.equal(steps.get('vp-exit')?.rc, 0);
    for (const m of ['vp device removed', 'vp tpmrm removed', 'vp pid file removed']) {
      assert.ok(marks.has(m), m);
    }

    // TPM 1.2 without --flags: Startup(ST_CLEAR) implied, PCR 17 reads as all ones;
    // SIGTERM removes the device and exits 0.
    assert.match(out('vp12-out'), /^New TPM device: \/dev\/tpm\d+ /);
    assert.equal(out('vp12-sys'), '1');
    assert.equal(out('vp12-pcrread17'), `00c40000001e00000000${'ff'.repeat(20)}`);
    assert.equal(out('vp12-c-c'), 'ptm capability is 0x17fff');
    assert.equal(steps.get('vp12-exit')?.rc, 0);
    assert.ok(marks.has('vp12 device removed after SIGTERM'));
    assert.match(out('vp12-state'), /tpm-00\.permall/);

    // seccomp: on by default on every thread, still there after all the commands above;
    // none with --seccomp action=none.
    for (const step of ['seccomp', 'seccomp-end', 'chroot-threads']) {
      ok(step);
      assertThreads(out(step), true);
    }
    ok('seccomp-none');
    assertThreads(out('seccomp-none'), false);

    // -R DIR: the daemon runs inside DIR (pid file and state there) and serves.
    ok('chroot-start');
    assert.equal(out('chroot-root'), '/tmp/cr');
    ok('chroot-getrandom');
    assert.match(out('chroot-getrandom'), /^[0-9a-f]{16}$/);
    assert.match(out('chroot-state'), /tpm2-00\.permall/);
    ok('chroot-s');
    assert.ok(marks.has('vtpm3 removed'));
  },
);

/** Writes an intact TPM state into `dir` on the host, with the key the matrix uses. */
async function writeState(v: Version, w: Written, dir: string, keyDir: string): Promise<void> {
  const which = (await run('swtpm', ['--version'])).code === 0 ? 'swtpm' : 'tswtpm';
  const s = await startTcp(which, [
    ...(v === '2.0' ? ['--tpm2'] : []),
    '--tpmstate',
    `dir=${dir}`,
    ...(w === 'aes128' ? WRITE_KEY(keyDir) : []),
    '--flags',
    'not-need-init,startup-clear',
  ]);
  await run('swtpm_ioctl', ['--tcp', `127.0.0.1:${s.ctrlPort}`, '-s']);
  await s.stop();
  if (!existsSync(join(dir, permallName(v)))) throw new Error(`${which} wrote no state in ${dir}`);
}

/** `uniq -c` of the threads' Seccomp lines: all threads filtered once (or none). */
function assertThreads(text: string, on: boolean): void {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+) (\w+):\s+(\d+)$/.exec(line);
    if (m) counts.set(`${m[2]} ${m[3]}`, Number(m[1]));
  }
  const n = counts.get(`Seccomp ${on ? 2 : 0}`) ?? 0;
  assert.ok(n >= 5, `threads with the filter ${on ? 'on' : 'off'}:\n${text}`);
  assert.equal(counts.get(`Seccomp_filters ${on ? 1 : 0}`), n, text);
  assert.equal(counts.size, 3, text); // no thread with another value
}
