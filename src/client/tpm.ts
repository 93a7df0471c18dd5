import { TPM_HEADER_SIZE } from '../protocol/tpm/header.js';
import { TPM_SEND_COMMAND } from '../protocol/tpm/prefix.js';
import { CuseDevice, type DeviceAddress, beforeDeadline, deviceTransmit } from './device.js';
import { TpmProtocolError } from './errors.js';
import { DeadlineError, closedBeforeAnswer, withDeadline } from './exchange.js';
import { type Address, type Wire, openWire, readExact } from './wire.js';

export interface TpmClientOptions {
  /** Per-command limit (connect + send + full response), ms. Default 60000. */
  readonly timeoutMs?: number;
  /**
   * Wrap each command in the TCG "TPM_SEND_COMMAND" prefix (PTM_CAP_SEND_COMMAND_HEADER,
   * TPM 2 only) with this default locality; the reply's length and ack are stripped.
   */
  readonly sendCommandHeader?: boolean;
  readonly locality?: number;
  /**
   * Reuse one connection (default). With false, every command gets a new connection
   * (as tcti-swtpm does). An `fd` address is always one connection. A device path is
   * kept open (or opened per command with false).
   */
  readonly persistent?: boolean;
}

export interface TransmitOptions {
  readonly timeoutMs?: number;
  /** Locality for the TCG prefix (only with `sendCommandHeader`). */
  readonly locality?: number;
}

/**
 * A client of the TPM data channel: `{ host, port }`, `{ path }` or a connected socket
 * `{ fd }` (owned by the client from then on; stream or datagram, e.g. the other end of
 * a CMD_SET_DATAFD socketpair), or a CUSE TPM `{ device }` (a path, or a
 * {@link CuseDevice} shared with a ControlClient): one write() per command, then
 * read()s until the response is complete. The TCG send-command prefix does not exist
 * there. A command that times out on a device cannot be taken back: its late
 * response is read and dropped.
 *
 * @example
 * const tpm = new TpmClient({ host: '127.0.0.1', port: 2321 });
 * // TPM2_Startup(SU_CLEAR)
 * const rsp = await tpm.transmit(Buffer.from('80010000000c000001440000', 'hex'));
 * console.log(rsp.readUInt32BE(6)); // 0 = TPM_RC_SUCCESS
 * await tpm.close();
 *
 * @example
 * // tpm2_getrandom -T device:/dev/vtpm0 8
 * const dev = new TpmClient({ device: '/dev/vtpm0' });
 * const random = await dev.transmit(Buffer.from('80010000000c0000017b0008', 'hex'));
 */
export class TpmClient {
  readonly address: Address | DeviceAddress;
  private readonly opts: TpmClientOptions;
  private wire: Wire | undefined;
  /** A device this client opened (from a device path). */
  private dev: CuseDevice | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private fdUsed = false;

  constructor(address: Address | DeviceAddress, options: TpmClientOptions = {}) {
    if ('device' in address && options.sendCommandHeader) {
      throw new TypeError('a CUSE device takes TPM commands without the send-command prefix');
    }
    this.address = address;
    this.opts = options;
  }

  /** Sends one command and resolves with its complete response (sized by its header). */
  transmit(command: Uint8Array, options: TransmitOptions = {}): Promise<Buffer> {
    const run = () => this.run(command, options);
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  /** Closes the connection (for an fd address: the fd; a shared CuseDevice stays open). */
  async close(): Promise<void> {
    await this.queue;
    this.wire?.close();
    this.wire = undefined;
    const dev = this.dev;
    this.dev = undefined;
    await dev?.close();
  }

  private persistent(): boolean {
    return 'fd' in this.address || (this.opts.persistent ?? true);
  }

  private runDevice(command: Uint8Array, ms: number, device: string | CuseDevice) {
    return withDeadline(
      'TPM command',
      ms,
      async (deadline) => {
        // (a shared device that was closed fails its write() with EBADF)
        let dev = typeof device === 'string' ? this.dev : device;
        if (typeof device === 'string' && (dev === undefined || dev.closed)) {
          dev = await beforeDeadline(CuseDevice.open(device), deadline, (d) => void d.close());
          if (this.persistent()) this.dev = dev;
        }
        if (dev === undefined) throw new TypeError('no device');
        let keep = typeof device !== 'string' || this.persistent();
        try {
          return await deviceTransmit(dev, command, deadline);
        } catch (e) {
          // A read still in the kernel takes the late response; start on a new opening.
          if (e instanceof DeadlineError && typeof device === 'string') keep = false;
          throw e;
        } finally {
          if (!keep) {
            if (this.dev === dev) this.dev = undefined;
            await dev.close();
          }
        }
      },
      () => {},
    );
  }

  private async run(command: Uint8Array, o: TransmitOptions): Promise<Buffer> {
    const ms = o.timeoutMs ?? this.opts.timeoutMs ?? 60000;
    if ('device' in this.address) return this.runDevice(command, ms, this.address.device);
    const prefixed = this.opts.sendCommandHeader ?? false;
    const msg = prefixed ? withPrefix(command, o.locality ?? this.opts.locality ?? 0) : command;
    let w: Wire | undefined;
    return withDeadline(
      'TPM command',
      ms,
      async (deadline) => {
        for (let attempt = 0; ; attempt++) {
          const reused = this.wire !== undefined;
          w = await this.connect(ms);
          try {
            await w.write(msg);
            const rsp = await readResponse(w, prefixed, deadline);
            if (!this.persistent()) this.drop(w);
            return rsp;
          } catch (e) {
            this.drop(w);
            // A server that closed a kept connection (swtpm `disconnect`) never read the
            // command: retry once on a new connection.
            if (!(closedBeforeAnswer(e) && reused && attempt === 0 && !('fd' in this.address))) {
              throw e;
            }
          }
        }
      },
      () => w && this.drop(w),
    );
  }

  private async connect(ms: number): Promise<Wire> {
    if (this.wire && !this.wire.ended) return this.wire;
    if (this.wire) this.drop(this.wire);
    const addr = this.address;
    if ('device' in addr) throw new TypeError('a device has no socket connection');
    if ('fd' in addr) {
      if (this.fdUsed) throw new TpmProtocolError('TPM command: the data fd is closed');
      this.fdUsed = true;
    }
    const w = await openWire(addr, ms);
    if (this.persistent()) this.wire = w;
    return w;
  }

  private drop(w: Wire): void {
    w.close();
    if (this.wire === w) this.wire = undefined;
  }
}

function withPrefix(command: Uint8Array, locality: number): Buffer {
  const b = Buffer.alloc(9 + command.length);
  b.writeUInt32BE(TPM_SEND_COMMAND, 0);
  b.writeUInt8(locality, 4);
  b.writeUInt32BE(command.length, 5);
  b.set(command, 9);
  return b;
}

async function exact(
  w: Wire,
  n: number,
  deadline: number | undefined,
  got: number,
): Promise<Buffer> {
  const b = await readExact(w, n, deadline);
  if (b === undefined) throw new DeadlineError();
  if (b === null || b.length < n) {
    throw new TpmProtocolError(
      `TPM response: connection closed after ${got + (b?.length ?? 0)} bytes`,
    );
  }
  return b;
}

/** One response: header (size field) then the rest; with the prefix: length, response, ack. */
async function readResponse(
  w: Wire,
  prefixed: boolean,
  deadline: number | undefined,
): Promise<Buffer> {
  if (prefixed) {
    const len = (await exact(w, 4, deadline, 0)).readUInt32BE(0);
    const rsp = await exact(w, len, deadline, 4);
    await exact(w, 4, deadline, 4 + len);
    return rsp;
  }
  const head = await exact(w, TPM_HEADER_SIZE, deadline, 0);
  const size = head.readUInt32BE(2);
  if (size < TPM_HEADER_SIZE) throw new TpmProtocolError(`TPM response: bad size ${size}`);
  const body = await exact(w, size - TPM_HEADER_SIZE, deadline, TPM_HEADER_SIZE);
  return Buffer.concat([head, body]);
}
