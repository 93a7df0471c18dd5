// Differential: the same swtpm_setup arguments run by Debian's swtpm_setup on C swtpm,
// by tswtpm_setup in process, and by tswtpm_setup driving C swtpm or `tswtpm socket`
// (--tpm). The states are compared with tpm2-tools: persistent EKs (template and
// attributes), NV index attributes, PCR banks, locked NV, EK certificate vs tpm2_createek,
// and each state must load in both C swtpm and tswtpm.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir, tpm2 } from '../helpers/procs.js';
import {
  type SetupPeer,
  type StateView,
  certPublicKey,
  createEkPem,
  machineSnapshot,
  normalizeLog,
  privateConfig,
  readPublicPem,
  runSetup,
  viewState,
  withServer,
} from '../helpers/setup-peers.js';

const tmp = tempDir('setup-diff-');
let conf = '';
/** The machine's CA and per-user configs before any run of this file. */
let machine: string[] = [];
before(() => {
  machine = machineSnapshot();
  conf = privateConfig(tmp.path);
});
after(() => tmp.remove());

interface Made {
  dir: string;
  log: string[];
}

async function make(peer: SetupPeer, name: string, args: string[]): Promise<Made> {
  const dir = join(tmp.path, name);
  mkdirSync(dir);
  const r = await runSetup(peer, ['--tpm-state', dir, '--config', conf, ...args]);
  assert.equal(r.code, 0, `${peer}: ${r.stdout}\n${r.stderr}`);
  return { dir, log: normalizeLog(r.stdout) };
}

async function viewOn(which: 'swtpm' | 'tswtpm', dir: string): Promise<StateView> {
  return withServer(which, dir, (port) => viewState(port));
}

describe('swtpm_setup vs tswtpm_setup: default EKs, certificates, locked NV, banks', () => {
  const args = [
    '--tpm2',
    '--createek',
    '--create-ek-cert',
    '--create-platform-cert',
    '--lock-nvram',
    '--pcr-banks',
    'sha256,sha384',
    '--vmid',
    'x',
  ];
  const made: Partial<Record<SetupPeer, Made>> = {};
  before(async () => {
    made.c = await make('c', 'c', args);
    made.ts = await make('ts', 'ts', args);
    made['ts-on-c'] = await make('ts-on-c', 'ts-on-c', args);
  });

  test('log lines are the same (apart from dates, keys and temp dirs)', () => {
    assert.deepEqual(made.ts!.log, made.c!.log);
    assert.deepEqual(made['ts-on-c']!.log, made.c!.log);
  });

  test('EKs, NV attributes and PCR banks are the same, seen through C swtpm', async () => {
    const ref = await viewOn('swtpm', made.c!.dir);
    assert.match(ref.persistent, /0x81010001[\s\S]*0x81010016/);
    assert.match(ref.nv, /0x1c00002:[\s\S]*value: 0x62072801/);
    assert.match(
      ref.pcrs,
      /sha1: \[ \]\n.*sha256: \[ 0,[^\n]*\n.*sha384: \[ 0,[^\n]*\n.*sha512: \[ \]/,
    );
    for (const peer of ['ts', 'ts-on-c'] as const) {
      assert.deepEqual(await viewOn('swtpm', made[peer]!.dir), ref, peer);
    }
  });

  test('each state loads in tswtpm and looks the same there', async () => {
    const ref = await viewOn('swtpm', made.c!.dir);
    assert.deepEqual(await viewOn('tswtpm', made.c!.dir), ref);
    assert.deepEqual(await viewOn('tswtpm', made.ts!.dir), ref);
  });

  test('EK certificates hold the EK: RSA = tpm2_createek, ECC = the persistent key', async () => {
    for (const peer of ['c', 'ts', 'ts-on-c'] as const) {
      const work = join(tmp.path, `${peer}-work`);
      mkdirSync(work);
      await withServer('swtpm', made[peer]!.dir, async (port) => {
        const rsa = await certPublicKey(port, '0x1c00002', work);
        assert.equal(rsa, await createEkPem(port, work), peer);
        const ecc = await certPublicKey(port, '0x1c00016', work);
        assert.equal(ecc, await readPublicPem(port, '0x81010016', work), peer);
        // The platform certificate carries the RSA EK's key too.
        assert.equal(await certPublicKey(port, '0x1c08000', work), rsa, peer);
      });
    }
  });

  test('--lock-nvram: the certificate indices refuse writes', async () => {
    const work = join(tmp.path, 'nvwrite');
    mkdirSync(work);
    for (const peer of ['c', 'ts', 'ts-on-c'] as const) {
      await withServer('swtpm', made[peer]!.dir, async (port) => {
        for (const idx of ['0x1c00002', '0x1c08000', '0x1c00016']) {
          const r = await tpm2('nvwrite', port, [idx, '-C', 'p', '-i', '/etc/hostname']);
          assert.notEqual(r.code, 0, `${peer} ${idx}`);
          assert.match(r.stderr, /0x148|locked/i, `${peer} ${idx}`);
        }
      });
    }
  });
});

describe('swtpm_setup vs tswtpm_setup: RSA 3072, signing+decryption EKs, ECC SPK', () => {
  const args = [
    '--tpm2',
    '--createek',
    '--create-ek-cert',
    '--allow-signing',
    '--decryption',
    '--rsa-keysize',
    '3072',
    '--create-spk',
    '--ecc',
    '--lock-nvram',
    '--pcr-banks',
    'sha1',
  ];
  test('same handles, templates in NV, attributes and banks (in process, on tswtpm socket)', async () => {
    const c = await make('c', 'c3072', args);
    const ts = await make('ts', 'ts3072', args);
    const tsTs = await make('ts-on-ts', 'tsts3072', args);
    assert.deepEqual(ts.log, c.log);
    const ref = await viewOn('swtpm', c.dir);
    for (const h of ['0x81000001', '0x8101001C', '0x81010016'])
      assert.ok(ref.persistent.includes(h));
    assert.match(ref.nv, /0x1c0001d:/);
    assert.match(ref.nv, /0x1c00017:/);
    assert.match(ref.keys['0x8101001C'] ?? '', /raw: 0x600f2/);
    assert.deepEqual(await viewOn('swtpm', ts.dir), ref);
    assert.deepEqual(await viewOn('swtpm', tsTs.dir), ref);
  });
});

// Last in this file (node:test runs its top-level tests in order; test/run.js runs one
// file at a time). Every certificate above came from the private CA; the machine's
// /var/lib/swtpm-localca and ~/.config/swtpm* are as they were.
test('only the private CA was used: the machine CA and user configs are untouched', () => {
  assert.ok(existsSync(join(tmp.path, 'ca', 'certserial')), 'private CA never used');
  assert.deepEqual(machineSnapshot(), machine);
});
