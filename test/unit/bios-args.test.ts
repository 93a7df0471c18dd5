import assert from 'node:assert/strict';
import { test } from 'node:test';
import { atoi, chooseTarget } from '../../src/cli/bios/bios-talk.js';
import { parseBiosTcp } from '../../src/cli/bios/tswtpm-bios.js';

// swtpm_bios 0.7.1's address rules (provisioning.md §6.1), values observed with Debian's binary.

test('--tcp splits at the last colon; 0.7.1 checks the port as a signed int', () => {
  assert.deepEqual(parseBiosTcp('host'), { host: 'host', port: 6545 });
  assert.deepEqual(parseBiosTcp(':'), { host: '127.0.0.1', port: 6545 });
  assert.deepEqual(parseBiosTcp(':2321'), { host: '127.0.0.1', port: 2321 });
  assert.deepEqual(parseBiosTcp('::1:2321'), { host: '::1', port: 2321 });
  assert.deepEqual(parseBiosTcp('h:'), { error: "Invalid port ''\n" });
  assert.deepEqual(parseBiosTcp('a:b'), { error: "Invalid port 'b'\n" });
  assert.deepEqual(parseBiosTcp(':70000'), { error: "Port '70000' outside valid range.\n" });
  assert.deepEqual(parseBiosTcp('h:70000'), { error: "Port ':70000' outside valid range.\n" });
  assert.deepEqual(parseBiosTcp(':-5'), { host: '127.0.0.1', port: 4294967291 });
});

test('transport precedence: device > tcp > unix > TCSD_USE_TCP_DEVICE > TPM_DEVICE > /dev/tpm0', () => {
  const tcp = { host: 'h', port: 1 };
  assert.deepEqual(chooseTarget({ device: '/d', tcp, unix: '/u' }, {}), {
    kind: 'device',
    path: '/d',
  });
  assert.deepEqual(chooseTarget({ tcp, unix: '/u' }, {}), { kind: 'tcp', host: 'h', port: 1 });
  assert.deepEqual(chooseTarget({ unix: '/u' }, { TCSD_USE_TCP_DEVICE: '' }), {
    kind: 'unix',
    path: '/u',
  });
  assert.deepEqual(chooseTarget({}, { TCSD_USE_TCP_DEVICE: '', TPM_DEVICE: '/t' }), {
    kind: 'tcp',
    host: 'localhost',
    port: 6545,
  });
  assert.deepEqual(chooseTarget({}, { TCSD_USE_TCP_DEVICE: '1', TCSD_TCP_DEVICE_PORT: ' 12x' }), {
    kind: 'tcp',
    host: 'localhost',
    port: 12,
  });
  assert.deepEqual(chooseTarget({}, { TPM_DEVICE: '/t' }), { kind: 'device', path: '/t' });
  assert.deepEqual(chooseTarget({}, {}), { kind: 'device', path: '/dev/tpm0' });
});

test('atoi: C semantics', () => {
  assert.equal(atoi(''), 0);
  assert.equal(atoi('abc'), 0);
  assert.equal(atoi('  -7z'), -7);
  assert.equal(atoi('+42'), 42);
  assert.equal(atoi('4294967297'), 1);
});
