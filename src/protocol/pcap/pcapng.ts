/**
 * swtpm master's `--pcap` capture format (runtime-features.md §4.2): pcapng in host
 * byte order with one Ethernet interface, every TPM command and response wrapped in a
 * simulated IPv4/TCP packet between 127.0.0.1:<client port> and 127.0.0.1:2321, so
 * that Wireshark's TPM 2.0 dissector (bound to port 2321) decodes the payload.
 * Pure: bytes out, no fs; the clock and the random numbers are passed in.
 */
import { HOST_LITTLE_ENDIAN } from '../host-endian.js';

/** pcapng block types and constants. */
export const BLOCK_TYPE_SHB = 0x0a0d0d0a;
export const BLOCK_TYPE_IDB = 0x00000001;
export const BLOCK_TYPE_EPB = 0x00000006;
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
export const LINKTYPE_ETHERNET = 1;

/** The port Wireshark decodes as TPM; swtpm always uses it for the TPM side. */
export const PCAP_TPM_PORT = 2321;
/** swtpm picks the client port at random in [50000, 55000). */
export const PCAP_CLIENT_PORT_MIN = 50000;
export const PCAP_CLIENT_PORT_END = 55000;

/** TCP flag bits (RFC 793). swtpm's data packets carry none of them. */
export const TH_FIN = 0x01;
export const TH_SYN = 0x02;
export const TH_ACK = 0x10;

const ETH_LEN = 14;
const IP_LEN = 20;
const TCP_LEN = 20;
/** Ethernet + IPv4 + TCP headers in front of every payload. */
export const PACKET_HEADERS_LEN = ETH_LEN + IP_LEN + TCP_LEN;
/** EPB fields before the packet data: type, length, interface, ts hi/lo, caplen, len. */
const EPB_HEADER_LEN = 28;
const IP_ID = 0x069b;
const IP_DF = 0x4000;
const TCP_WINDOW = 0xffc4;
const LOCALHOST = 0x7f000001;

const LE = HOST_LITTLE_ENDIAN;

/** SHB (section length 0, not -1, as swtpm writes it) followed by the IDB (snaplen 0). */
export function fileHeader(): Uint8Array {
  const b = new DataView(new ArrayBuffer(28 + 20));
  b.setUint32(0, BLOCK_TYPE_SHB, LE);
  b.setUint32(4, 28, LE);
  b.setUint32(8, BYTE_ORDER_MAGIC, LE);
  b.setUint16(12, 1, LE);
  b.setUint16(14, 0, LE);
  b.setBigUint64(16, 0n, LE);
  b.setUint32(24, 28, LE);
  b.setUint32(28, BLOCK_TYPE_IDB, LE);
  b.setUint32(32, 20, LE);
  b.setUint16(36, LINKTYPE_ETHERNET, LE);
  b.setUint16(38, 0, LE);
  b.setUint32(40, 0, LE);
  b.setUint32(44, 20, LE);
  return new Uint8Array(b.buffer);
}

export interface PacketFields {
  readonly toTpm: boolean;
  readonly clientPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly checksums: boolean;
  /** Microseconds since the Unix epoch. */
  readonly timeUs: bigint;
}

/** One EPB holding the simulated packet with `payload` (possibly empty). */
export function packetBlock(f: PacketFields, payload: Uint8Array): Uint8Array {
  const caplen = PACKET_HEADERS_LEN + payload.length;
  const pad = (4 - ((EPB_HEADER_LEN + caplen) & 3)) & 3;
  const total = EPB_HEADER_LEN + caplen + pad + 4;
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  v.setUint32(0, BLOCK_TYPE_EPB, LE);
  v.setUint32(4, total, LE);
  v.setUint32(8, 0, LE);
  v.setUint32(12, Number(BigInt.asUintN(32, f.timeUs >> 32n)), LE);
  v.setUint32(16, Number(BigInt.asUintN(32, f.timeUs)), LE);
  v.setUint32(20, caplen, LE);
  v.setUint32(24, caplen, LE);
  const eth = EPB_HEADER_LEN;
  v.setUint16(eth + 12, 0x0800); // MACs stay 0; EtherType IPv4
  const ip = eth + ETH_LEN;
  out[ip] = 0x45;
  out[ip + 1] = 0x10;
  v.setUint16(ip + 2, IP_LEN + TCP_LEN + payload.length);
  v.setUint16(ip + 4, IP_ID);
  v.setUint16(ip + 6, IP_DF);
  out[ip + 8] = 64;
  out[ip + 9] = 6;
  v.setUint32(ip + 12, LOCALHOST);
  v.setUint32(ip + 16, LOCALHOST);
  const tcp = ip + IP_LEN;
  const tpmPort = PCAP_TPM_PORT;
  v.setUint16(tcp, f.toTpm ? f.clientPort : tpmPort);
  v.setUint16(tcp + 2, f.toTpm ? tpmPort : f.clientPort);
  v.setUint32(tcp + 4, f.seq >>> 0);
  v.setUint32(tcp + 8, f.ack >>> 0);
  out[tcp + 12] = 0x50;
  out[tcp + 13] = f.flags;
  v.setUint16(tcp + 14, TCP_WINDOW);
  out.set(payload, tcp + TCP_LEN);
  v.setUint32(total - 4, total, LE);
  if (f.checksums) {
    const seg = out.subarray(tcp, tcp + TCP_LEN + payload.length);
    const pseudo = new Uint8Array(12);
    pseudo.set(out.subarray(ip + 12, ip + 20), 0);
    pseudo[9] = 6;
    new DataView(pseudo.buffer).setUint16(10, seg.length);
    v.setUint16(tcp + 16, finish(sum16(pseudo) + sum16(seg)));
    v.setUint16(ip + 10, finish(sum16(out.subarray(ip, ip + IP_LEN))));
  }
  return out;
}

/** Sum of big-endian 16-bit words; an odd last byte is the high half of a word. */
function sum16(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) s += b[b.length - 1]! << 8;
  return s;
}

/** swtpm folds the carry only once before complementing (kept for identical bytes). */
function finish(s: number): number {
  return ~((s & 0xffff) + Math.floor(s / 0x10000)) & 0xffff;
}

/**
 * The simulated TCP connection of one capture: one handshake when the file is
 * opened, one FIN exchange when it is closed (not one per client connection).
 *
 * @example
 * const c = new PcapConnection({ clientPort: 50123, cseq: 1, sseq: 2, checksums: false });
 * write(c.start(now())); write(c.record(true, cmd, now())); write(c.end(now()));
 */
export class PcapConnection {
  readonly clientPort: number;
  readonly checksums: boolean;
  #cseq: number;
  #sseq: number;

  constructor(o: { clientPort: number; cseq: number; sseq: number; checksums: boolean }) {
    this.clientPort = o.clientPort;
    this.checksums = o.checksums;
    this.#cseq = o.cseq >>> 0;
    this.#sseq = o.sseq >>> 0;
  }

  /** File header (SHB + IDB) and the SYN, SYN|ACK, ACK records. */
  start(timeUs: bigint): Uint8Array {
    return concat([fileHeader(), ...this.#exchange(TH_SYN, timeUs)]);
  }

  /** The FIN, FIN|ACK, ACK records written before the file is closed. */
  end(timeUs: bigint): Uint8Array {
    return concat(this.#exchange(TH_FIN, timeUs));
  }

  /** One TPM command (`toTpm`) or response; the sequence number advances by its length. */
  record(toTpm: boolean, payload: Uint8Array, timeUs: bigint): Uint8Array {
    const b = this.#block(toTpm, 0, timeUs, payload);
    if (toTpm) this.#cseq = (this.#cseq + payload.length) >>> 0;
    else this.#sseq = (this.#sseq + payload.length) >>> 0;
    return b;
  }

  #exchange(flag: number, timeUs: bigint): Uint8Array[] {
    // The opening SYN carries ack 0; each side's first packet uses one sequence number.
    const first = this.#block(true, flag, timeUs, EMPTY, flag === TH_SYN ? 0 : undefined);
    this.#cseq = (this.#cseq + 1) >>> 0;
    const second = this.#block(false, flag | TH_ACK, timeUs, EMPTY);
    this.#sseq = (this.#sseq + 1) >>> 0;
    const third = this.#block(true, TH_ACK, timeUs, EMPTY);
    return [first, second, third];
  }

  #block(
    toTpm: boolean,
    flags: number,
    timeUs: bigint,
    payload: Uint8Array,
    ack?: number,
  ): Uint8Array {
    return packetBlock(
      {
        toTpm,
        clientPort: this.clientPort,
        seq: toTpm ? this.#cseq : this.#sseq,
        ack: ack ?? (toTpm ? this.#sseq : this.#cseq),
        flags,
        checksums: this.checksums,
        timeUs,
      },
      payload,
    );
  }
}

const EMPTY = new Uint8Array(0);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
