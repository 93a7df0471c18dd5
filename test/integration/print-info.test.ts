// `--print-info`, `--print-profiles`, `--profile` and the capabilities that name them
// (runtime-features.md §5). Debian's swtpm 0.7.1 has none of these options (asserted
// below), so the expected output is what the spec observed libtpms 0.9.2's
// TPMLIB_GetInfo return, which swtpm 0.10 prints followed by a newline.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { haveSwtpm, run, stopAll, tempDir } from '../helpers/spawn-tswtpm.js';

after(stopAll);

const ENV = { TPM_PATH: undefined } as NodeJS.ProcessEnv;
const SPEC = '{"TPMSpecification":{"family":"2.0","level":0,"revision":164}}';
const ATTRS =
  '{"TPMAttributes":{"manufacturer":"id:00001014","version":"id:20191023","model":"swtpm"}}';
const FEATURES = '{"TPMFeatures":{"RSAKeySizes":[1024,2048,3072],"CamelliaKeySizes":[128,256]}}';
/** libtpms merges the objects of several bits into one. */
const merged = (...objs: string[]) => `{${objs.map((o) => o.slice(1, -1)).join(',')}}`;

const tswtpm = (args: string[]) => run('tswtpm', args, { env: ENV, timeoutMs: 10000 });

describe('--print-info', () => {
  it('is not in swtpm 0.7.1 (the oracle is the spec)', { skip: !haveSwtpm }, async () => {
    const r = await run('swtpm', ['socket', '--tpm2', '--print-info', '1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unrecognized option '--print-info'/);
  });

  for (const [arg, out] of [
    ['1', SPEC],
    ['2', ATTRS],
    ['0x4', FEATURES],
    ['07', merged(SPEC, ATTRS, FEATURES)],
    ['0xff', merged(SPEC, ATTRS, FEATURES)],
    // 0.10-only bits: libtpms 0.9.2 answers {}; 010 is octal 8.
    ['010', '{}'],
    ['0x80', '{}'],
  ] as const) {
    it(`--tpm2 --print-info ${arg} prints TPMLIB_GetInfo and a newline, exit 0`, async () => {
      for (const iface of ['socket', 'chardev', 'cuse']) {
        const r = await tswtpm([iface, '--tpm2', '--print-info', arg]);
        assert.equal(r.code, 0, `${iface}: ${r.stderr}`);
        assert.equal(r.stdout, `${out}\n`, iface);
        assert.equal(r.stderr, '');
      }
    });
  }

  it('TPM 1.2 reports its own specification', async () => {
    const r = await tswtpm(['socket', '--print-info', '1']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^\{"TPMSpecification":\{"family":"1.2",.*\}\n$/);
  });

  for (const bad of ['x', '-1', '0x100000000', '4294967296', ' ', '0x', '1k']) {
    it(`rejects '${bad}' with swtpm's message, exit 1`, async () => {
      const r = await tswtpm(['socket', '--tpm2', '--print-info', bad]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `tswtpm: Cannot parse info value '${bad}'.\n`);
    });
  }

  it('0 counts as not given: the server starts (and here lacks its state location)', async () => {
    const r = await tswtpm(['socket', '--tpm2', '--print-info', '0']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /no TPM state location/);
  });

  it('with a state location the TPM is started first (swtpm creates the state)', async () => {
    const dir = tempDir();
    const r = await tswtpm(['socket', '--tpm2', '--print-info', '1', '--tpmstate', `dir=${dir}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${SPEC}\n`);
    assert.ok(readdirSync(dir).includes('tpm2-00.permall'));
  });
});

describe('profiles on libtpms 0.9', () => {
  it('--print-profiles fails with a clear message and touches no state', async () => {
    const dir = tempDir();
    const r = await tswtpm(['socket', '--tpm2', '--print-profiles', '--tpmstate', `dir=${dir}`]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'tswtpm: --print-profiles requires libtpms 0.10 or later with profile support; the loaded libtpms is 0.9.2\n',
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  for (const iface of ['socket', 'cuse']) {
    it(`${iface} --profile fails before any state is written`, async () => {
      const dir = tempDir();
      const args = [iface, '--tpm2', '--profile', 'name=default-v1', '--tpmstate', `dir=${dir}`];
      args.push('--flags', 'not-need-init,startup-clear');
      if (iface === 'cuse') args.push('-n', 'tswtpm-profile-test');
      const r = await tswtpm(args);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /--profile requires libtpms 0.10 or later.*0\.9\.2\n$/);
      assert.deepEqual(readdirSync(dir), []);
    });
  }

  it('--print-capabilities lists print-info and pcap, and no profile feature', async () => {
    const r = await tswtpm(['socket', '--tpm2', '--print-capabilities']);
    assert.equal(r.code, 0);
    const caps = JSON.parse(r.stdout) as { features: string[]; profiles?: unknown };
    const f = caps.features;
    assert.ok(f.indexOf('cmdarg-print-info') > f.indexOf('rsa-keysize-3072'));
    assert.ok(f.indexOf('cmdarg-print-info') < f.indexOf('tpmstate-opt-lock'));
    assert.equal(f.at(-1), 'cmdarg-pcap');
    for (const x of ['cmdarg-profile', 'cmdarg-print-profiles', 'profile-opt-remove-disabled']) {
      assert.ok(!f.includes(x), x);
    }
    assert.equal(caps.profiles, undefined);
  });
});
