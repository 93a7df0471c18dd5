// The pcapng codec of `--pcap` against the layout in runtime-features.md §4.2 and the
// sizes swtpm master's test_tpm2_pcap checks (§4.4). Golden bytes are written out by
// hand from the spec's tables (little-endian host), never produced by our encoder.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  PcapConnection,
  TH_ACK,
  TH_FIN,
  TH_SYN,
  packetBlock,
} from '../../src/protocol/pcap/pcapng.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// SHB: type, length 28, magic, version 1.0, section length 0 (not -1), length again.
// IDB: type 1, length 20, link type 1 (Ethernet), reserved, snaplen 0, length again.
const HEADER = hex(`
  0a0d0d0a 1c000000 4d3c2b1a 0100 0000 0000000000000000 1c000000
  01000000 14000000 0100 0000 00000000 14000000`);

const conn = (checksums = false) =>
  new PcapConnection({ clientPort: 50001, cseq: 0x11223344, sseq: 0xfffffffe, checksums });

describe('pcapng codec', () => {
  it('starts with the SHB and IDB of the spec, then three 88-byte records (312 bytes)', () => {
    const b = conn().start(0n);
    assert.equal(b.length, 312);
    assert.deepEqual(Buffer.from(b.subarray(0, 48)), HEADER);
  });

  it('a 12-byte command is a 100-byte EPB, a 10-byte response 96 (test_tpm2_pcap sizes)', () => {
    const c = conn();
    c.start(0n);
    assert.equal(c.record(true, new Uint8Array(12), 0n).length, 100);
    assert.equal(c.record(false, new Uint8Array(10), 0n).length, 96);
    assert.equal(c.end(0n).length, 264);
  });

  it('lays out EPB, Ethernet, IPv4 and TCP headers as swtpm does', () => {
    const payload = hex('80010000000c000001440000');
    const t = 0x0102030405060708n;
    const b = packetBlock(
      {
        toTpm: true,
        clientPort: 50001,
        seq: 0x11223344,
        ack: 0x55667788,
        flags: 0,
        checksums: false,
        timeUs: t,
      },
      payload,
    );
    const want = hex(`
      06000000 64000000 00000000 04030201 08070605 42000000 42000000
      000000000000 000000000000 0800
      45 10 0034 069b 4000 40 06 0000 7f000001 7f000001
      c351 0911 11223344 55667788 50 00 ffc4 0000 0000
      80010000000c000001440000
      0000
      64000000`);
    assert.deepEqual(Buffer.from(b), want);
  });

  it('numbers the simulated connection as swtpm: SYN ack 0, data advances seq by length', () => {
    const c = conn();
    const s = Buffer.from(c.start(0n));
    // Records after the 48-byte header; TCP starts 28 + 14 + 20 bytes into each.
    const tcp = (rec: Buffer, i: number) => rec.subarray(48 + 88 * i + 62, 48 + 88 * i + 82);
    const fields = (t: Buffer) => [
      t.readUInt16BE(0),
      t.readUInt16BE(2),
      t.readUInt32BE(4),
      t.readUInt32BE(8),
      t[13],
    ];
    assert.deepEqual(fields(tcp(s, 0)), [50001, 2321, 0x11223344, 0, TH_SYN]);
    assert.deepEqual(fields(tcp(s, 1)), [2321, 50001, 0xfffffffe, 0x11223345, TH_SYN | TH_ACK]);
    assert.deepEqual(fields(tcp(s, 2)), [50001, 2321, 0x11223345, 0xffffffff, TH_ACK]);
    const cmd = Buffer.from(c.record(true, new Uint8Array(12), 0n)).subarray(62, 82);
    assert.deepEqual(fields(cmd), [50001, 2321, 0x11223345, 0xffffffff, 0]);
    const rsp = Buffer.from(c.record(false, new Uint8Array(10), 0n)).subarray(62, 82);
    assert.deepEqual(fields(rsp), [2321, 50001, 0xffffffff, 0x11223351, 0]);
    const e = Buffer.from(c.end(0n));
    const fin = (i: number) => fields(e.subarray(88 * i + 62, 88 * i + 82));
    // The server sequence number wrapped: 0xffffffff + 10 = 9.
    assert.deepEqual(fin(0), [50001, 2321, 0x11223351, 9, TH_FIN]);
    assert.deepEqual(fin(1), [2321, 50001, 9, 0x11223352, TH_FIN | TH_ACK]);
    assert.deepEqual(fin(2), [50001, 2321, 0x11223352, 10, TH_ACK]);
  });

  it('checksums are 0 unless asked for', () => {
    const f = { toTpm: false, clientPort: 50001, seq: 1, ack: 2, flags: 0, timeUs: 0n };
    const p = hex('80010000000a00000000');
    const off = Buffer.from(packetBlock({ ...f, checksums: false }, p));
    const on = Buffer.from(packetBlock({ ...f, checksums: true }, p));
    assert.equal(off.readUInt16BE(28 + 14 + 10), 0);
    assert.equal(off.readUInt16BE(28 + 34 + 16), 0);
    // An IPv4 header with its checksum sums to 0xffff (RFC 1071).
    const ip = on.subarray(42, 62);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    assert.equal(sum, 0xffff);
    assert.notEqual(on.readUInt16BE(28 + 34 + 16), 0);
  });
});
