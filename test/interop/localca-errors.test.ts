import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  type CaFiles,
  LOCALCA_BIN,
  type Tool,
  asnTree,
  caFiles,
  certDer,
  haveSwtpmLocalca,
  rsaModulus,
  runLocalca,
  serialOf,
  snapshot,
  tpmArgs,
  verify,
} from '../helpers/localca.js';
import { tempDir } from '../helpers/procs.js';

// Bad input (provisioning.md §4.1, §4.4): tswtpm_localca fails where swtpm_localca 0.7.1
// fails, with the same message and exit code 1, and leaves the CA as it was. Cross use: a
// CA made by either tool works with the other, and serial numbers keep increasing.

const skip = !haveSwtpmLocalca() && 'Debian swtpm_localca or openssl not installed';
const work = tempDir('tswtpm-localca-');
const NOBODY = 65534;
let modulus = '';

/** One CA made by each tool; tests that change a CA work on a copy (no key generation). */
const pristine: Partial<Record<Tool, CaFiles>> = {};

before(() => {
  // Other uids must reach the CA directories below (mkdtemp makes 0700).
  chmodSync(work.path, 0o755);
  if (skip) return;
  modulus = rsaModulus(2048);
  pristine.c = setup('pristine-c', 'c').f;
  pristine.ts = setup('pristine-ts', 'ts').f;
});

/** A copy of the pristine CA made by `from`, with its own config and output directory. */
function copyOf(name: string, from: Tool) {
  const f = caFiles(join(work.path, name));
  chmodSync(f.base, 0o755);
  cpSync(pristine[from]!.ca, f.ca, { recursive: true, preserveTimestamps: true });
  const out = join(f.base, 'out');
  mkdirSync(out, { mode: 0o755 });
  return { f, out };
}
after(() => work.remove());

function ekArgs(f: CaFiles, out: string, extra: string[] = []): string[] {
  return [
    '--type',
    'ek',
    '--ek',
    modulus,
    '--dir',
    out,
    '--vmid',
    'test',
    ...tpmArgs(true),
    '--configfile',
    f.conf,
    '--optsfile',
    f.opts,
    ...extra,
  ];
}

/** A CA directory made by `creator`, with an output directory beside it. */
function setup(name: string, creator: Tool, extraConf = '', env?: Record<string, string>) {
  const f = caFiles(join(work.path, name), extraConf);
  chmodSync(f.base, 0o755);
  const out = join(f.base, 'out');
  mkdirSync(out, { mode: 0o755 });
  const r = runLocalca(creator, ekArgs(f, out), env ? { env } : {});
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /^Creating swtpm-localca dir '.*'\.\nCreating root CA and a local CA's signing key and issuer cert\.\nSuccessfully created EK certificate locally\.\n$/,
  );
  return { f, out };
}

/** Runs both tools with the same arguments; both must fail alike without touching the CA. */
function bothFail(f: CaFiles, args: string[], uid?: number, keepSerial = true) {
  const before = snapshot(f.ca, keepSerial ? [] : ['certserial']);
  const opts = uid !== undefined ? { uid } : {};
  const c = runLocalca('c', args, opts);
  const ts = runLocalca('ts', args, opts);
  assert.equal(c.status, 1, `C: ${c.stderr}`);
  assert.equal(ts.status, 1, `ours: ${ts.stderr}`);
  assert.deepEqual(snapshot(f.ca, keepSerial ? [] : ['certserial']), before);
  return { c, ts };
}

test('corrupt config file: same message, exit 1, CA untouched', { skip }, () => {
  const { f, out } = copyOf('badconf', 'c');
  writeFileSync(
    f.conf,
    Buffer.from('\x00\xff\xfe garbage\n  statedir = /x\n#statedir=/y\n=\n', 'latin1'),
  );
  const { c, ts } = bothFail(f, ekArgs(f, out));
  assert.equal(ts.stderr, `Missing 'statedir' config value in config file ${f.conf}.\n`);
  assert.equal(ts.stderr, c.stderr);
  assert.equal(ts.stdout, c.stdout);
});

test('corrupt signing key: EK certificate not created, exit 1, keys untouched', { skip }, () => {
  const { f, out } = copyOf('badkey', 'c');
  writeFileSync(join(f.ca, 'signkey.pem'), 'not a key\n');
  rmCert(out);
  const serial = () => Number(readFileSync(join(f.ca, 'certserial'), 'utf8'));
  const s0 = serial();
  const { c, ts } = bothFail(f, ekArgs(f, out), undefined, false);
  // Both take a serial before making the certificate (§4.4 step 9).
  assert.equal(serial(), s0 + 2);
  assert.equal(
    ts.stderr,
    'Could not create EK certificate locally\nCould not import signing key : The requested data were not available.\n\n',
  );
  assert.equal(ts.stderr, c.stderr);
  assert.ok(!existsSync(join(out, 'ek.cert')));
});

test(
  'wrong or missing signing-key password: same message, exit 1, keys untouched',
  { skip },
  () => {
    const env = { SWTPM_ROOTCA_PASSWORD: 'root pw' };
    const { f, out } = setup('pw-wrong', 'ts', 'signingkey_password = s3cret\n', env);
    const conf = readFileSync(f.conf, 'utf8');
    for (const [edit, reason] of [
      ['signingkey_password = wrong', 'Decryption has failed.'],
      ['', 'The requested data were not available.'],
    ] as const) {
      writeFileSync(f.conf, conf.replace('signingkey_password = s3cret', edit));
      const { c, ts } = bothFail(f, ekArgs(f, out), undefined, false);
      assert.equal(
        ts.stderr,
        `Could not create EK certificate locally\nCould not import signing key : ${reason}\n\n`,
      );
      assert.equal(ts.stderr, c.stderr);
    }
  },
);

function rmCert(out: string): void {
  spawnSync('rm', ['-f', join(out, 'ek.cert'), join(out, 'platform.cert')]);
}

test('CA directory owned by another user: same message, exit 1, CA untouched', { skip }, (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run as another uid');
  const { f, out } = copyOf('owned', 'c'); // statedir root:root 0750
  const { c, ts } = bothFail(f, ekArgs(f, out), NOBODY);
  assert.match(ts.stderr, /^Need read\/write rights on statedir .* for user nobody\.\n$/);
  assert.equal(ts.stderr, c.stderr);
  assert.equal(ts.stdout, c.stdout);
  // Readable directory, but the lock file belongs to root.
  chmodSync(f.ca, 0o777);
  try {
    const r = bothFail(f, ekArgs(f, out), NOBODY);
    assert.match(
      r.ts.stderr,
      /^Need read\/write rights on .*\.lock\.swtpm-localca for user nobody\.\n$/,
    );
    assert.equal(r.ts.stderr, r.c.stderr);
  } finally {
    chmodSync(f.ca, 0o750);
  }
});

test('missing --ek: same message, exit 1, no certificate', { skip }, () => {
  const { f, out } = copyOf('noek', 'ts');
  rmCert(out);
  const args = ekArgs(f, out).filter((a, i, all) => a !== '--ek' && all[i - 1] !== '--ek');
  const { c, ts } = bothFail(f, args, undefined, false);
  assert.equal(
    ts.stderr,
    'Could not create EK certificate locally\nCould not set modulus and exponent on RSA key : The scanning of a large integer has failed.\n\n',
  );
  assert.equal(ts.stderr, c.stderr);
  assert.ok(!existsSync(join(out, 'ek.cert')));
});

test('unwritable --dir: same message, exit 1', { skip }, () => {
  const { f } = copyOf('nodir', 'ts');
  const missing = join(f.base, 'does-not-exist');
  const { c, ts } = bothFail(f, ekArgs(f, missing), undefined, false);
  assert.equal(
    ts.stderr,
    `Could not create EK certificate locally\nCould not open ${missing}/ek.cert for writing the certificate: No such file or directory\n\n`,
  );
  assert.equal(ts.stderr, c.stderr);
  // With --logfile, the same text goes to the log only (appended).
  const logs = (['c', 'ts'] as const).map((tool) => {
    const log = join(f.base, `${tool}.log`);
    const r = runLocalca(tool, ekArgs(f, missing, ['--logfile', log]));
    assert.equal(r.status, 1);
    assert.equal(r.stdout + r.stderr, '');
    return readFileSync(log, 'utf8');
  });
  assert.equal(logs[1], ts.stderr);
  assert.equal(logs[1], logs[0]);
});

/** Issues one EK certificate with each tool in `order`; returns the serials in order. */
function issue(f: CaFiles, out: string, order: Tool[], env?: Record<string, string>): bigint[] {
  return order.map((tool) => {
    const r = runLocalca(tool, ekArgs(f, out), env ? { env } : {});
    assert.equal(r.status, 0, `${tool}: ${r.stderr}`);
    const der = certDer(readFileSync(join(out, 'ek.cert')), true);
    const v = verify(der, f.ca, work.path);
    assert.ok(v.ok, `${tool}: ${v.out}`);
    return serialOf(der);
  });
}

const increasing = (s: bigint[]) => s.every((v, i) => i === 0 || v === s[i - 1]! + 1n);

for (const creator of ['c', 'ts'] as const) {
  const other: Tool = creator === 'c' ? 'ts' : 'c';
  test(`CA created by ${creator}, used by both: serials keep increasing`, { skip }, () => {
    const { f, out } = copyOf(`cross-${creator}`, creator);
    const serials = issue(f, out, [other, creator, other, creator]);
    assert.equal(serials[0], 3n); // 1 written at creation, 2 for the creating run
    assert.ok(increasing(serials), serials.join(','));
  });

  test(`password-protected CA created by ${creator} works with ${other}`, { skip }, () => {
    const env = { SWTPM_ROOTCA_PASSWORD: 'root pw' };
    const { f, out } = setup(`pw-${creator}`, creator, 'signingkey_password = s3cret\n', env);
    for (const k of ['signkey.pem', 'swtpm-localca-rootca-privkey.pem'])
      assert.match(readFileSync(join(f.ca, k), 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----$/m);
    assert.ok(increasing(issue(f, out, [other, creator], env)));
  });
}

test(
  'a CA created by ours has the layout and modes of one created by swtpm_localca',
  { skip },
  () => {
    const shape = (t: Tool) => {
      const s = snapshot(pristine[t]!.ca);
      return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.split(' ')[0]]));
    };
    assert.deepEqual(shape('ts'), shape('c'));
  },
);

test('the serial is allocated under the flock of .lock.swtpm-localca', { skip }, async () => {
  const { f, out } = copyOf('lock', 'c');
  const lock = join(f.ca, '.lock.swtpm-localca');
  // util-linux flock(1) takes the same BSD lock as swtpm_localca; it holds it until stdin closes.
  const holder = spawn('flock', ['-x', lock, 'sh', '-c', 'echo locked; cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await once(holder.stdout!, 'data');
  const ours = spawn(process.execPath, [LOCALCA_BIN, ...ekArgs(f, out)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, XDG_CONFIG_HOME: '/nonexistent' },
  });
  const exited = once(ours, 'exit');
  // Give ours time to reach the lock; a tool that ignored it would read the old serial now.
  await new Promise((r) => setTimeout(r, 1000));
  writeFileSync(join(f.ca, 'certserial'), '100');
  holder.stdin!.end();
  const [code] = await exited;
  assert.equal(code, 0);
  assert.equal(serialOf(certDer(readFileSync(join(out, 'ek.cert')), true)), 101n);
  assert.equal(readFileSync(join(f.ca, 'certserial'), 'utf8'), '101');
});

test('command-line errors and help: same streams and exit codes', { skip }, () => {
  for (const args of [['--help'], ['-h'], ['-?'], ['--type'], ['-x']]) {
    const [c, ts] = (['c', 'ts'] as const).map((tool) => {
      const r = runLocalca(tool, args);
      const norm = (t: string) => t.replaceAll('tswtpm_localca', 'swtpm_localca');
      return { status: r.status, stdout: norm(r.stdout), stderr: norm(r.stderr) };
    });
    assert.deepEqual(ts, c, args.join(' '));
  }
});

test('odd plug-in arguments behave as in swtpm_localca', { skip }, () => {
  const { f, out } = copyOf('odd', 'c');
  const withType = (type: string[], extra: string[] = []) =>
    ekArgs(f, out, extra).flatMap((a, i, all) =>
      a === '--type' ? type : all[i - 1] === '--type' ? [] : [a],
    );
  for (const args of [
    withType([]), // no --type: "platform" in the message, no spec parameters
    withType(['--type', 'EK']),
    withType(['--type', 'ek'], ['--tpm-spec-level', '-1']),
  ]) {
    const { c, ts } = bothFail(f, args, undefined, false);
    assert.equal(ts.stderr, c.stderr, args.join(' '));
    assert.equal(ts.stdout, c.stdout);
  }
  // Bad --ek forms: swtpm_cert's texts (odd length, illegal digit, empty, unknown curve).
  const withEk = (ek: string) =>
    ekArgs(f, out).map((a, i, all) => (all[i - 1] === '--ek' ? ek : a));
  for (const ek of [
    'abc',
    '0g',
    '',
    'x=,y=',
    'x=abc,y=01,id=secp384r1',
    'x=0102,y=0304,id=secp999',
  ]) {
    const { c, ts } = bothFail(f, withEk(ek), undefined, false);
    assert.equal(ts.stderr, c.stderr, `--ek ${ek}`);
  }
  // --vmid: `+` and `,` become `_`, then GnuTLS's DN rules (spaces, escapes, string types).
  for (const vmid of ['  both  ', '\\ x', 'a+b,c\\+d Müller', 'x=y', 'tab\tx', 'trail\\']) {
    const trees = (['c', 'ts'] as const).map((tool) => {
      const r = runLocalca(tool, ekArgs(f, out, ['--vmid', vmid]));
      assert.equal(r.status, 0, r.stderr);
      return asnTree(readFileSync(join(out, 'ek.cert')));
    });
    assert.deepEqual(trees[1], trees[0], vmid);
  }
  // strtol(…, 0): `12abc` is 12, `0x10` is 16, `abc` is 0.
  for (const [level, rev] of [
    ['12abc', '0x10'],
    ['abc', '010'],
  ]) {
    const trees = (['c', 'ts'] as const).map((tool) => {
      const r = runLocalca(
        tool,
        ekArgs(f, out, ['--tpm-spec-level', level!, '--tpm-spec-revision', rev!]),
      );
      assert.equal(r.status, 0, r.stderr);
      return asnTree(readFileSync(join(out, 'ek.cert')));
    });
    assert.deepEqual(trees[1], trees[0]);
  }
});
