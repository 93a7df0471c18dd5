// `tswtpm cuse` on the host, which has no /dev/cuse: argument checks, the refusal of an
// existing device name, and the launcher relaying the daemon's error and exit code.
// The working device is tested in a QEMU guest (test/interop/cuse-guest.test.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../bin/tswtpm.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tswtpm-cuse-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function tswtpm(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
}

test('a missing or unusable device name is an error', () => {
  const none = tswtpm(['cuse', '--tpm2', '--tpmstate', `dir=${dir}`]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /Missing name of CUSE device/);
  const slash = tswtpm(['cuse', '-n', 'a/b', '--tpm2', '--tpmstate', `dir=${dir}`]);
  assert.equal(slash.status, 1);
  assert.match(slash.stderr, /Invalid CUSE device name/);
});

test('an existing /dev/NAME is refused', () => {
  const r = tswtpm(['cuse', '-n', 'null', '--tpm2', '--tpmstate', `dir=${dir}`]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /A device '\/dev\/null' already exists/);
});

test('-M/-m must be numbers', () => {
  const r = tswtpm(['cuse', '-n', 'vtpm-x', '-M', 'ten', '--tpmstate', `dir=${dir}`]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /Could not parse major number 'ten'/);
});

test(
  'without /dev/cuse the daemon fails, and the launcher reports it',
  { skip: existsSync('/dev/cuse') && 'this host has /dev/cuse' },
  () => {
    const state = join(dir, 'state');
    const r = tswtpm(['cuse', '-n', 'tswtpm-test-nocuse', '--tpm2', '--tpmstate', `dir=${state}`]);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /Could not open \/dev\/cuse: ENOENT \(is the cuse kernel module loaded\?\)/,
    );
    // swtpm's CUSE creates a missing state directory.
    assert.ok(existsSync(state));
    const fg = tswtpm(
      ['cuse', '-n', 'tswtpm-test-nocuse', '--tpm2', '--tpmstate', `dir=${state}`],
      {
        TSWTPM_CUSE_FOREGROUND: '1',
      },
    );
    assert.equal(fg.status, 1);
    assert.match(fg.stderr, /Could not open \/dev\/cuse/);
  },
);
