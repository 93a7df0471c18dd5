/**
 * Client-side framing: decodeSocketResponse and exchange() over a scripted Wire, with
 * golden bytes from control-channel.md Appendix A (Debian swtpm 0.7.1), delivered
 * whole, split and coalesced.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exchange } from '../../src/client/exchange.js';
import type { Wire } from '../../src/client/wire.js';
import {
  capabilityNames,
  decodeSocketResponse,
  respFixedSize,
  respMaxSize,
} from '../../src/protocol/ctrl/client-codec.js';
import { defByName } from '../../src/protocol/ctrl/index.js';
import type { CtrlRequest, CtrlResponse } from '../../src/protocol/ctrl/index.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

/** A Wire that answers from a list of chunks and records what was written. */
function scripted(chunks: Buffer[]): Wire & { written: Buffer[] } {
  const q = [...chunks];
  const written: Buffer[] = [];
  return {
    written,
    ended: false,
    write: async (b) => void written.push(Buffer.from(b)),
    async read(max) {
      const c = q.shift();
      if (c === undefined) return null;
      if (c.length > max) q.unshift(c.subarray(max));
      return c.subarray(0, max);
    },
    close() {},
  };
}

/** Every way to cut `bytes` into two chunks, plus whole. */
function splits(bytes: Buffer): Buffer[][] {
  const out = [[bytes]];
  for (let i = 1; i < bytes.length; i++) out.push([bytes.subarray(0, i), bytes.subarray(i)]);
  return out;
}

describe('client codec', () => {
  it('sizes come from the table', () => {
    assert.equal(respFixedSize(defByName('GET_CAPABILITY')), 8);
    assert.equal(respFixedSize(defByName('GET_TPMESTABLISHED')), 8);
    assert.equal(respFixedSize(defByName('SET_BUFFERSIZE')), 16);
    assert.equal(respFixedSize(defByName('GET_STATEBLOB')), 16);
    assert.equal(respFixedSize(defByName('GET_INFO')), 12);
    assert.equal(respFixedSize(defByName('INIT')), 4);
    // swtpm_ioctl's read sizes (strace): 3088 and 3084
    assert.equal(respMaxSize(defByName('GET_STATEBLOB')), 3088);
    assert.equal(respMaxSize(defByName('GET_INFO')), 3084);
  });

  it('decodes Appendix A responses', () => {
    const caps = decodeSocketResponse(defByName('GET_CAPABILITY'), hex('00000000 0000ffff'));
    assert.equal(caps.result, 0);
    assert.equal(caps.caps, 0xffffn);
    const est = decodeSocketResponse(defByName('GET_TPMESTABLISHED'), hex('00000000 01000000'));
    assert.deepEqual(est, { result: 0, bit: 1 });
    const bs = decodeSocketResponse(
      defByName('SET_BUFFERSIZE'),
      hex('00000000 00001000 00000af8 00001000'),
    );
    assert.deepEqual(bs, { result: 0, bufferSize: 4096, minSize: 2808, maxSize: 4096 });
    const err = decodeSocketResponse(defByName('SET_BUFFERSIZE'), hex('0000000a'));
    assert.deepEqual(err, { result: 10 });
    const info = decodeSocketResponse(
      defByName('GET_INFO'),
      hex('00000000 00000003 00000002 7d00'),
    );
    assert.equal(info.totLength, 3);
    assert.deepEqual([...(info.buffer ?? [])], [0x7d, 0]);
  });

  it('names capability bits', () => {
    const names = capabilityNames(0xffff);
    assert.equal(names.length, 16);
    assert.ok(names.includes('SEND_COMMAND_HEADER'));
    assert.ok(names.includes('HASHING'));
    assert.ok(!names.includes('LOCK_STORAGE'));
    assert.deepEqual(capabilityNames(0x10000), ['LOCK_STORAGE']);
  });
});

describe('exchange framing', () => {
  const cases: Array<[CtrlRequest, string, string, (r: CtrlResponse) => void]> = [
    [
      { cmd: 'GET_CAPABILITY' },
      '00000001',
      '00000000 0000ffff',
      (r) => assert.equal(r.caps, 0xffffn),
    ],
    [
      { cmd: 'SET_LOCALITY', locality: 5 },
      '00000005 05',
      '0000003d',
      (r) => assert.equal(r.result, 0x3d),
    ],
    [
      { cmd: 'GET_INFO', flags: 0n, offset: 0 },
      '00000012 0000000000000000 00000000 00000000',
      '00000000 00000003 00000003 7b7d00',
      (r) => assert.equal(Buffer.from(r.buffer!).toString(), '{}\0'),
    ],
    [
      { cmd: 'GET_STATEBLOB', stateFlags: 0, type: 3, offset: 0 },
      '0000000c 00000000 00000003 00000000',
      '00000800 00000000 00000000 00000000',
      (r) => assert.equal(r.result, 0x800),
    ],
    [
      { cmd: 'GET_STATEBLOB', stateFlags: 1, type: 1, offset: 0 },
      '0000000c 00000001 00000001 00000000',
      '00000000 00000000 00000005 00000005 0102030405',
      (r) => assert.deepEqual([...r.data!], [1, 2, 3, 4, 5]),
    ],
    [
      { cmd: 'GET_STATEBLOB', stateFlags: 1, type: 1, offset: 0 },
      '0000000c 00000001 00000001 00000000',
      '0000000a',
      (r) => assert.deepEqual(r, { result: 10 }),
    ],
  ];
  for (const [req, sent, reply, check] of cases) {
    it(`${req.cmd} → ${reply}, whole and split`, async () => {
      for (const chunks of splits(hex(reply))) {
        // The next response's bytes must stay unread: framing by the table, not by reads.
        const w = scripted([...chunks, hex('deadbeef')]);
        const r = await exchange(w, req, undefined);
        check(r);
        assert.deepEqual(w.written[0], hex(sent));
        assert.deepEqual(await w.read(4), hex('deadbeef'));
      }
    });
  }

  it('reports a connection closed mid-response', async () => {
    const w = scripted([hex('000000')]);
    await assert.rejects(exchange(w, { cmd: 'STOP' }, undefined), {
      code: 'ERR_TPM_PROTOCOL',
      message: 'CMD_STOP: connection closed after 3 response bytes',
    });
  });
});
