/**
 * `--pcap file=<path>|fd=<fd>[,truncate][,mode=0NNN][,checksums]` (swtpm master):
 * every TPM command and response of the data channel, the `--flags startup-*`
 * command, the automatic TPM2_Shutdown and the vendor SET_LOCALITY go into a pcapng
 * file, as records of one simulated TCP connection to port 2321. Control-channel
 * messages are not captured (as in swtpm). The sink subscribes to `tswtpm:wire`.
 */
import {
  constants,
  closeSync,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  openSync,
  writeSync,
} from 'node:fs';
import { type WireMessage, wireChannel } from '../../device/trace.js';
import {
  PCAP_CLIENT_PORT_END,
  PCAP_CLIENT_PORT_MIN,
  PcapConnection,
} from '../../protocol/pcap/pcapng.js';
import { nodeCrypto } from '../../protocol/state/node-crypto.js';
import { parseSendCommandPrefix } from '../../protocol/tpm/prefix.js';
import { CliError } from '../common/subopts.js';
import { errText, strerror } from '../common/sys.js';

/** swtpm's default mode of the capture file. */
const DEFAULT_MODE = 0o640;

export type PcapOptions = Record<string, string | number | boolean>;

/** Microseconds since the Unix epoch (swtpm: CLOCK_REALTIME). */
const now = (): bigint => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));

/**
 * An open capture. Writes are synchronous and their errors ignored, as in swtpm
 * (its fd is O_NONBLOCK and write failures are not reported).
 *
 * @example
 * const pcap = PcapSink.open({ file: '/tmp/tpm.pcapng' }, true);
 * // ... serve ...
 * pcap.close();
 */
export class PcapSink {
  readonly #fd: number;
  readonly #tpm2: boolean;
  readonly #conn: PcapConnection;
  /** Write position for `fd=`: swtpm seeks to the end (or 0), Node writes at a position. */
  #pos: number | undefined;
  /** The last command carried the TCG send-command prefix (TPM 2): strip its reply's. */
  #prefixed = false;
  #closed = false;
  /** Only this TPM's traffic (one process may hold many); undefined: all of it. */
  #source: object | undefined;
  readonly #onWire = (m: unknown) => {
    const w = m as WireMessage;
    if (this.#source === undefined || w.source === this.#source) this.#record(w);
  };

  private constructor(fd: number, pos: number | undefined, tpm2: boolean, checksums: boolean) {
    this.#fd = fd;
    this.#pos = pos;
    this.#tpm2 = tpm2;
    // node:crypto only with --pcap (protocol/state/node-crypto.ts: start-up cost)
    const { randomInt } = nodeCrypto();
    this.#conn = new PcapConnection({
      clientPort: randomInt(PCAP_CLIENT_PORT_MIN, PCAP_CLIENT_PORT_END),
      cseq: randomInt(0, 2 ** 32 - 1),
      sseq: randomInt(0, 2 ** 32 - 1),
      checksums,
    });
    this.#write(this.#conn.start(now()));
    wireChannel.subscribe(this.#onWire);
  }

  /** Opens the file or adopts the fd, writes the file header and the handshake. */
  static open(o: PcapOptions, tpm2: boolean, source?: object): PcapSink {
    const mode = typeof o.mode === 'number' ? o.mode : DEFAULT_MODE;
    const truncate = o.truncate === true;
    let fd = -1;
    let pos: number | undefined;
    if (typeof o.file === 'string') {
      const { O_CREAT, O_WRONLY, O_NONBLOCK, O_NOFOLLOW, O_TRUNC, O_APPEND } = constants;
      const flags = O_CREAT | O_WRONLY | O_NONBLOCK | O_NOFOLLOW | (truncate ? O_TRUNC : O_APPEND);
      try {
        fd = openSync(o.file, flags, mode);
      } catch (err) {
        throw new CliError(`Could not open pcap file for writing: ${errText(err)}`);
      }
    } else if (typeof o.fd === 'number') {
      fd = o.fd;
      try {
        pos = truncate ? 0 : fstatSync(fd).size;
      } catch (err) {
        throw new CliError(`Could not seek to desired position in pcap file: ${errText(err)}`);
      }
      try {
        if (truncate) ftruncateSync(fd, 0);
      } catch (err) {
        throw new CliError(`Could not ftruncate the pcap file: ${errText(err)}`);
      }
    }
    if (fd < 0) throw new CliError(`Could not chmod the pcap file: ${strerror('EBADF')}`);
    try {
      // Also for fd=: swtpm changes the mode bits of the file behind the fd.
      fchmodSync(fd, mode);
    } catch (err) {
      if (typeof o.file === 'string') closeSync(fd);
      throw new CliError(`Could not chmod the pcap file: ${errText(err)}`);
    }
    const sink = new PcapSink(fd, pos, tpm2, o.checksums !== undefined);
    sink.#source = source;
    return sink;
  }

  /** The FIN exchange, then close; called once at process cleanup. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    wireChannel.unsubscribe(this.#onWire);
    this.#write(this.#conn.end(now()));
    try {
      closeSync(this.#fd);
    } catch {}
  }

  #record(m: WireMessage): void {
    if (m.kind === 'SWTPM_IO_Read') {
      this.#prefixed =
        this.#tpm2 && m.internal !== true && parseSendCommandPrefix(m.data) !== undefined;
      this.#write(this.#conn.record(true, m.data, now()));
    } else if (m.kind === 'SWTPM_IO_Write') {
      // swtpm records the TPM response only, without the prefix's length and trailer.
      const rsp =
        this.#prefixed && m.data.length >= 8 ? m.data.subarray(4, m.data.length - 4) : m.data;
      this.#prefixed = false;
      this.#write(this.#conn.record(false, rsp, now()));
    }
  }

  #write(b: Uint8Array): void {
    try {
      const n = writeSync(this.#fd, b, 0, b.length, this.#pos ?? null);
      if (this.#pos !== undefined) this.#pos += n;
    } catch {
      // swtpm ignores write errors on the capture.
    }
  }
}
