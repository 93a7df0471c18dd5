import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pcrRead, run, startTcp, tempDir, tpm2 } from '../helpers/procs.js';

// Encrypted state (--key) and migration blobs (--migration-key) move between Debian's
// swtpm 0.7.1 and tswtpm in both directions with the PCR values intact (issue 5).

const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;
const KEY128 = '00112233445566778899aabbccddeeff';
const KEY256 = `${KEY128}${KEY128.split('').reverse().join('')}`;

interface KeySetup {
  readonly name: string;
  readonly file: string;
  readonly opt: (path: string) => string;
}

const SETUPS: readonly KeySetup[] = [
  { name: 'aes-128 hex key file', file: KEY128, opt: (p) => `file=${p}` },
  { name: 'aes-256 hex key file', file: KEY256, opt: (p) => `file=${p},mode=aes-256-cbc` },
  { name: 'pbkdf2 password file', file: 'correct horse', opt: (p) => `pwdfile=${p}` },
  {
    name: 'sha512 password file, aes-256',
    file: 'battery staple',
    opt: (p) => `pwdfile=${p},kdf=sha512,mode=aes-256-cbc`,
  },
];

const work = tempDir();
after(() => work.remove());

async function extend(port: number, byte: string): Promise<void> {
  const r = await tpm2('pcrextend', port, [`10:sha256=${byte.repeat(32)}`]);
  assert.equal(r.code, 0, r.stderr);
}

async function shutdownState(port: number): Promise<void> {
  const r = await tpm2('shutdown', port, []);
  assert.equal(r.code, 0, r.stderr);
}

describe('encrypted state files', { skip: HAVE_SWTPM ? false : 'Debian swtpm missing' }, () => {
  for (const [i, k] of SETUPS.entries()) {
    test(`${k.name}: swtpm → tswtpm → swtpm keeps PCR 10`, async () => {
      const dir = join(work.path, `keys-${i}`);
      await run('mkdir', ['-p', dir]);
      const keyFile = join(work.path, `key-${i}`);
      writeFileSync(keyFile, k.file);
      const base = ['--tpm2', '--tpmstate', `dir=${dir}`, '--key', k.opt(keyFile)];

      const a = await startTcp('swtpm', [...base, '--flags', 'not-need-init,startup-clear']);
      await extend(a.port, 'a1');
      const afterSwtpm = await pcrRead(a.port, 10);
      await shutdownState(a.port);
      await a.stop();
      const file = readFileSync(join(dir, 'tpm2-00.permall'));
      assert.equal(file.readUInt16BE(4) & 1, 1, 'swtpm wrote an encrypted permall');

      const b = await startTcp('tswtpm', [...base, '--flags', 'not-need-init,startup-state']);
      let afterOurs: string;
      try {
        assert.equal(await pcrRead(b.port, 10), afterSwtpm);
        await extend(b.port, 'b2');
        afterOurs = await pcrRead(b.port, 10);
        await shutdownState(b.port);
      } finally {
        assert.equal(await b.stop(), 0);
      }
      const ours = readFileSync(join(dir, 'tpm2-00.permall'));
      assert.equal(ours.readUInt16BE(4) & 1, 1, 'tswtpm wrote an encrypted permall');
      assert.equal(ours.readUInt16BE(4) & 8, file.readUInt16BE(4) & 8, 'same key size flag');

      const c = await startTcp('swtpm', [...base, '--flags', 'not-need-init,startup-state']);
      try {
        assert.equal(await pcrRead(c.port, 10), afterOurs);
      } finally {
        await c.stop();
      }
    });
  }
});

describe('migration blobs', { skip: HAVE_SWTPM ? false : 'Debian swtpm missing' }, () => {
  const key = join(work.path, 'migkey');
  writeFileSync(key, KEY256);
  const mig = ['--migration-key', `file=${key},mode=aes-256-cbc`];

  for (const [from, to] of [
    ['swtpm', 'tswtpm'],
    ['tswtpm', 'swtpm'],
  ] as const) {
    test(`${from} --save → ${to} --load keeps PCR 10`, async () => {
      const src = tempDir();
      const dst = tempDir();
      try {
        const a = await startTcp(from, [
          '--tpm2',
          '--tpmstate',
          `dir=${src.path}`,
          ...mig,
          '--flags',
          'not-need-init,startup-clear',
        ]);
        await extend(a.port, 'c3');
        const want = await pcrRead(a.port, 10);
        const files: string[] = [];
        for (const type of ['permanent', 'volatile']) {
          const f = join(src.path, `${type}.blob`);
          const r = await run('swtpm_ioctl', [
            '--tcp',
            `127.0.0.1:${a.ctrlPort}`,
            '--save',
            type,
            f,
          ]);
          assert.equal(r.code, 0, r.stderr);
          files.push(f);
        }
        const blob = readFileSync(files[0]!);
        assert.equal(blob.readUInt16BE(4) & 0x02, 0x02, 'blob is migration-key encrypted');
        await a.stop();

        const b = await startTcp(to, ['--tpm2', '--tpmstate', `dir=${dst.path}`, ...mig]);
        const ctl = ['--tcp', `127.0.0.1:${b.ctrlPort}`];
        assert.equal((await run('swtpm_ioctl', [...ctl, '--stop'])).code, 0);
        for (const [i, type] of ['permanent', 'volatile'].entries()) {
          const r = await run('swtpm_ioctl', [...ctl, '--load', type, files[i]!]);
          assert.equal(r.code, 0, r.stderr);
        }
        const init = await run('swtpm_ioctl', [...ctl, '-i']);
        assert.equal(init.code, 0, init.stderr);
        assert.equal(await pcrRead(b.port, 10), want);
        await b.stop();
      } finally {
        src.remove();
        dst.remove();
      }
    });
  }
});
