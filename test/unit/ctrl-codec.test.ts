import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CTRL_TABLE,
  decodeIoctlRequest,
  decodeSocketRequest,
  defByCode,
  defByIoctl,
  defByName,
  encodeIoctlResponse,
  encodeSocketResponse,
  ioctlNumber,
  socketBytesNeeded,
} from '../../src/protocol/ctrl/index.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Values compiled from tpm_ioctl.h on x86_64 (control-channel.md §1.1).
const IOCTLS: Record<string, number> = {
  GET_CAPABILITY: 0x80085000,
  INIT: 0xc0045001,
  SHUTDOWN: 0x80045002,
  GET_TPMESTABLISHED: 0x80085003,
  SET_LOCALITY: 0xc0045004,
  HASH_START: 0x80045005,
  HASH_DATA: 0xd0045006,
  HASH_END: 0x80045007,
  CANCEL_TPM_CMD: 0x80045008,
  STORE_VOLATILE: 0x80045009,
  RESET_TPMESTABLISHED: 0xc004500a,
  GET_STATEBLOB: 0xcc10500b,
  SET_STATEBLOB: 0xcc0c500c,
  STOP: 0x8004500d,
  GET_CONFIG: 0x8008500e,
  SET_DATAFD: 0x8004500f,
  SET_BUFFERSIZE: 0xc0105010,
  GET_INFO: 0xcc105011,
  LOCK_STORAGE: 0xc0045012,
};

test('every command has the ioctl number of tpm_ioctl.h and code = nr + 1', () => {
  assert.equal(CTRL_TABLE.length, 19);
  for (const d of CTRL_TABLE) {
    assert.equal(ioctlNumber(d), IOCTLS[d.name], d.name);
    assert.equal(d.code, d.nr + 1);
    assert.equal(defByIoctl(ioctlNumber(d)), d);
    assert.equal(defByCode(d.code), d);
  }
});

test('capability bits of all commands but GET_CAPABILITY make 0x17fff', () => {
  const caps = CTRL_TABLE.reduce((a, d) => a | d.cap, 0);
  assert.equal(caps, 0x17fff & ~0x8000);
});

test('body rules follow swtpm (Appendix A)', () => {
  assert.deepEqual(decodeSocketRequest(hex('0000000f')).ok, true);
  const stray = decodeSocketRequest(hex('0000000f 00'));
  assert.equal(stray.ok, false);
  assert.equal(stray.ok === false && stray.result, 3);
  const init5 = decodeSocketRequest(hex('00000002 0000000000'));
  assert.equal(init5.ok === false && init5.result, 3);
  const loc = decodeSocketRequest(hex('00000005 04000000'));
  assert.deepEqual(loc.ok && loc.req, { cmd: 'SET_LOCALITY', locality: 4 });
  const unknown = decodeSocketRequest(hex('00000099'));
  assert.equal(unknown.ok === false && unknown.def, undefined);
  const info = decodeSocketRequest(hex('00000012 0000000000000003 00000001 00000000'));
  assert.deepEqual(info.ok && info.req, { cmd: 'GET_INFO', flags: 3n, offset: 1, pad: 0 });
});

test('bytes needed: fixed body of every command, code first', () => {
  assert.equal(socketBytesNeeded(hex('0000')), 4);
  assert.equal(socketBytesNeeded(hex('00000011')), 8);
  assert.equal(socketBytesNeeded(hex('0000000d')), 16);
  assert.equal(socketBytesNeeded(hex('00000001')), 4);
  assert.equal(socketBytesNeeded(hex('00000099')), 4);
});

test('socket responses: golden bytes from Debian swtpm 0.7.1', () => {
  const caps = encodeSocketResponse(defByName('GET_CAPABILITY'), { result: 0, caps: 0xffffn });
  assert.deepEqual(caps, hex('00000000 0000ffff'));
  const est = encodeSocketResponse(defByName('GET_TPMESTABLISHED'), { result: 0, bit: 1 });
  assert.deepEqual(est, hex('00000000 01000000'));
  const estErr = encodeSocketResponse(defByName('GET_TPMESTABLISHED'), { result: 0xa });
  assert.deepEqual(estErr, hex('0000000a'));
  const buf = encodeSocketResponse(defByName('SET_BUFFERSIZE'), {
    result: 0,
    bufferSize: 4096,
    minSize: 2808,
    maxSize: 4096,
  });
  assert.deepEqual(buf, hex('00000000 00001000 00000af8 00001000'));
  const info = encodeSocketResponse(defByName('GET_INFO'), {
    result: 0,
    totLength: 3,
    length: 2,
    buffer: hex('7d00'),
  });
  assert.deepEqual(info, hex('00000000 00000003 00000002 7d00'));
  const save = encodeSocketResponse(defByName('GET_STATEBLOB'), {
    result: 0x800,
    stateFlags: 0,
    totLength: 0,
    length: 0,
    data: new Uint8Array(0),
  });
  assert.deepEqual(save, hex('00000800 00000000 00000000 00000000'));
});

test('ioctl view: host-endian whole structs, 4 bytes on error', () => {
  const d = defByName('SET_LOCALITY');
  const arg = Buffer.alloc(4);
  arg[0] = 3;
  assert.deepEqual(decodeIoctlRequest(d, arg), { cmd: 'SET_LOCALITY', locality: 3 });
  const caps = encodeIoctlResponse(defByName('GET_CAPABILITY'), { result: 0, caps: 0x16fffn });
  assert.equal(caps.length, 8);
  assert.equal(caps.buf.readBigUInt64LE(0), 0x16fffn);
  const err = encodeIoctlResponse(defByName('GET_CONFIG'), { result: 0xa });
  assert.equal(err.length, 4);
  assert.equal(err.buf.readUInt32LE(0), 0xa);
});
