// Pure helpers of the engine: long-command detection and the fatal error response.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandCode, fatalErrorResponse, isLongCommand } from '../../src/engine/index.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

test('commandCode reads bytes 6..9 big-endian, undefined when short', () => {
  assert.equal(commandCode(hex('8002 00000043 00000131')), 0x131);
  assert.equal(commandCode(hex('00c1 0000000a 8000000d')), 0x8000000d);
  assert.equal(commandCode(hex('8001 00000009 000001')), undefined);
});

test('isLongCommand: TPM 2 CreatePrimary/Create/CreateLoaded, TPM 1.2 TakeOwnership/CreateWrapKey', () => {
  for (const cc of ['00000131', '00000153', '00000191']) {
    assert.equal(isLongCommand('2.0', hex(`8002 00000000 ${cc}`)), true, cc);
    assert.equal(isLongCommand('1.2', hex(`00c2 00000000 ${cc}`)), false, cc);
  }
  for (const ord of ['0000000d', '0000001f']) {
    assert.equal(isLongCommand('1.2', hex(`00c2 00000000 ${ord}`)), true, ord);
    assert.equal(isLongCommand('2.0', hex(`8002 00000000 ${ord}`)), false, ord);
  }
  assert.equal(isLongCommand('2.0', hex('8001 0000000c 0000017b 0010')), false);
  assert.equal(isLongCommand('2.0', hex('8002')), false);
});

// Golden bytes: Debian swtpm 0.7.1 `socket` answering GetRandom sent before CMD_INIT.
test('fatalErrorResponse matches swtpm tpmlib_write_fatal_error_response', () => {
  assert.deepEqual(Buffer.from(fatalErrorResponse('2.0')), hex('8001 0000000a 00000101'));
  assert.deepEqual(Buffer.from(fatalErrorResponse('1.2')), hex('00c4 0000000a 00000009'));
});
