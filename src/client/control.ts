import { CAP_NAMES } from '../protocol/ctrl/client-codec.js';
import {
  type CtrlRequest,
  type CtrlResponse,
  PTM_CONFIG_FLAG_FILE_KEY,
  PTM_CONFIG_FLAG_MIGRATION_KEY,
  PTM_HASH_DATA_SIZE,
  PTM_STATE_FLAG_DECRYPTED,
  PTM_STATE_FLAG_ENCRYPTED,
} from '../protocol/ctrl/index.js';
import { TPM_RETRY } from '../protocol/tpm/results.js';
import {
  type BlobType,
  type BufferSizes,
  type CallOptions,
  type Capabilities,
  type Config,
  type ControlAddress,
  type ControlClientOptions,
  type StateBlob,
  blobType,
} from './control-types.js';
import { CuseDevice, beforeDeadline, deviceRequest } from './device.js';
import { TpmConnectionError, TpmError } from './errors.js';
import { DeadlineError, closedBeforeAnswer, exchange, withDeadline } from './exchange.js';
import { type Wire, describe, openWire } from './wire.js';

export type {
  BlobType,
  BufferSizes,
  CallOptions,
  Capabilities,
  CapabilityName,
  Config,
  ControlAddress,
  ControlClientOptions,
  StateBlob,
} from './control-types.js';

/**
 * A client of swtpm's control channel (`--ctrl type=tcp|unixio`), for tswtpm and
 * Debian's C swtpm alike. One typed method per CMD_* command; a non-zero result
 * rejects with {@link TpmError}.
 *
 * The same methods work on a CUSE TPM (`tswtpm cuse -n vtpm0`, swtpm's CUSE TPM) with
 * `{ device: '/dev/vtpm0' }`: each command becomes its PTM_* ioctl, state blobs move
 * in 3072-byte ioctls and hash data in 4096-byte ones, and a failed ioctl rejects
 * with {@link TpmDeviceError} (PTM_SET_DATAFD: `EINVAL`). A device path is opened
 * per call unless `persistent`; to use a {@link TpmClient} on the device at the same
 * time, share one {@link CuseDevice}. A call that times out cannot stop an ioctl
 * already in the kernel; its late answer is dropped.
 *
 * @example
 * const ctrl = new ControlClient({ path: '/run/tpm/ctrl.sock' });
 * const caps = await ctrl.getCapability();
 * if (caps.flags.INIT) await ctrl.init({ deleteVolatile: true });
 * const blob = await ctrl.getStateBlob('permanent'); // undefined if there is none
 * await ctrl.setLocality(3);
 * console.log(await ctrl.getInfo(3)); // { TPMSpecification: {...}, TPMAttributes: {...} }
 *
 * @example
 * // A CUSE TPM: swtpm_ioctl -c /dev/vtpm0
 * const cuse = new ControlClient({ device: '/dev/vtpm0' });
 * console.log((await cuse.getCapability()).mask.toString(16)); // 16fff
 */
export class ControlClient {
  readonly address: ControlAddress;
  private readonly timeoutMs: number;
  private readonly persistent: boolean;
  private wire: Wire | undefined;
  /** A device this client opened and keeps (`persistent` with a device path). */
  private dev: CuseDevice | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(address: ControlAddress, options: ControlClientOptions = {}) {
    this.address = address;
    this.timeoutMs = options.timeoutMs ?? 20000;
    this.persistent = options.persistent ?? false;
  }

  /** Sends any request and returns the decoded response, whatever its result. */
  request(
    req: CtrlRequest,
    opts: CallOptions & { fds?: readonly number[] } = {},
  ): Promise<CtrlResponse> {
    const run = () => this.run(req, opts);
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  private async run(req: CtrlRequest, opts: CallOptions & { fds?: readonly number[] }) {
    const ms = opts.timeoutMs ?? this.timeoutMs;
    if ('device' in this.address) return this.runDevice(req, ms, this.address.device);
    let w: Wire | undefined;
    return withDeadline(
      `CMD_${req.cmd}`,
      ms,
      async (deadline) => {
        for (let attempt = 0; ; attempt++) {
          const reused = this.wire !== undefined;
          w = await this.connect(ms);
          try {
            const rsp = await exchange(w, req, deadline, opts.fds);
            if (!this.persistent || req.cmd === 'SHUTDOWN') this.drop(w);
            return rsp;
          } catch (e) {
            this.drop(w);
            // A kept connection the server had already closed: the request was never
            // read, so it is sent once more on a new connection.
            if (!(reused && attempt === 0 && closedBeforeAnswer(e))) throw e;
          }
        }
      },
      () => w && this.drop(w),
    );
  }

  private runDevice(req: CtrlRequest, ms: number, device: string | CuseDevice) {
    return withDeadline(
      `PTM_${req.cmd}`,
      ms,
      async (deadline) => {
        const dev = await this.openDevice(device, deadline);
        let keep = typeof device !== 'string' || (this.persistent && req.cmd !== 'SHUTDOWN');
        try {
          return await deviceRequest(dev, req, deadline);
        } catch (e) {
          // An ioctl still in the kernel: the next call starts on a new opening.
          if (e instanceof DeadlineError && typeof device === 'string') keep = false;
          throw e;
        } finally {
          if (!keep) await this.closeDevice(dev);
        }
      },
      () => {},
    );
  }

  private async openDevice(device: string | CuseDevice, deadline: number | undefined) {
    if (typeof device !== 'string') return device;
    if (this.dev && !this.dev.closed) return this.dev;
    const dev = await beforeDeadline(CuseDevice.open(device), deadline, (d) => void d.close());
    if (this.persistent) this.dev = dev;
    return dev;
  }

  private async closeDevice(dev: CuseDevice): Promise<void> {
    if (this.dev === dev) this.dev = undefined;
    await dev.close();
  }

  private async connect(ms: number): Promise<Wire> {
    if (this.wire && !this.wire.ended) return this.wire;
    if (this.wire) this.drop(this.wire);
    const addr = this.address;
    if ('device' in addr) throw new TypeError('a device has no socket connection');
    const w = await openWire(addr, ms);
    if (this.persistent) this.wire = w;
    return w;
  }

  private drop(w: Wire): void {
    w.close();
    if (this.wire === w) this.wire = undefined;
  }

  /** Like request(), but a non-zero result rejects with TpmError. */
  private async ok(req: CtrlRequest, opts: CallOptions = {}, fds?: readonly number[]) {
    const rsp = await this.request(req, fds ? { ...opts, fds } : opts);
    if (rsp.result !== 0) throw new TpmError(req.cmd, rsp.result);
    return rsp;
  }

  /** Closes a persistent connection or device (no-op otherwise; a shared CuseDevice stays open). */
  async close(): Promise<void> {
    await this.queue;
    if (this.wire) this.drop(this.wire);
    if (this.dev) await this.closeDevice(this.dev);
  }

  /** CMD_GET_CAPABILITY: the PTM_CAP_* mask and each bit by name. */
  async getCapability(opts?: CallOptions): Promise<Capabilities> {
    const rsp = await this.ok({ cmd: 'GET_CAPABILITY' }, opts);
    const mask = Number((rsp.caps ?? 0n) & 0xffffffffn);
    const flags: Record<string, boolean> = {};
    for (const c of CAP_NAMES) flags[c.name] = (mask & c.bit) !== 0;
    return { mask, flags };
  }

  /** CMD_INIT: (re)starts the TPM; `deleteVolatile` removes the volatile state after loading it. */
  async init(flags: number | { deleteVolatile?: boolean } = 0, opts?: CallOptions): Promise<void> {
    const initFlags = typeof flags === 'number' ? flags : flags.deleteVolatile ? 1 : 0;
    await this.ok({ cmd: 'INIT', initFlags }, opts);
  }

  /** CMD_SHUTDOWN: the server answers, then exits. */
  async shutdown(opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'SHUTDOWN' }, opts);
  }

  /** CMD_GET_TPMESTABLISHED. */
  async getTpmEstablished(opts?: CallOptions): Promise<boolean> {
    const rsp = await this.ok({ cmd: 'GET_TPMESTABLISHED' }, opts);
    return (rsp.bit ?? 0) !== 0;
  }

  /** CMD_SET_LOCALITY (0..4). */
  async setLocality(locality: number, opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'SET_LOCALITY', locality }, opts);
  }

  /** CMD_HASH_START: begins the H-CRTM / DRTM sequence. */
  async hashStart(opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'HASH_START' }, opts);
  }

  /**
   * CMD_HASH_DATA for any amount of data, sent as 4096-byte commands (as swtpm_ioctl
   * does, which every server and the CUSE ioctl accept). Takes bytes or a stream.
   */
  async hashData(
    data: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    opts?: CallOptions,
  ): Promise<void> {
    const chunks = data instanceof Uint8Array ? [data] : data;
    let pend = Buffer.alloc(0);
    for await (const c of chunks) {
      pend = Buffer.concat([pend, c]);
      while (pend.length >= PTM_HASH_DATA_SIZE) {
        await this.hashChunk(pend.subarray(0, PTM_HASH_DATA_SIZE), opts);
        pend = pend.subarray(PTM_HASH_DATA_SIZE);
      }
    }
    if (pend.length > 0) await this.hashChunk(pend, opts);
  }

  private async hashChunk(data: Uint8Array, opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'HASH_DATA', length: data.length, data }, opts);
  }

  /** CMD_HASH_END: TPM 2 extends the digest into PCR 17 (or 0 before TPM2_Startup). */
  async hashEnd(opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'HASH_END' }, opts);
  }

  /** hashStart + hashData + hashEnd. */
  async hash(data: Uint8Array | AsyncIterable<Uint8Array>, opts?: CallOptions): Promise<void> {
    await this.hashStart(opts);
    await this.hashData(data, opts);
    await this.hashEnd(opts);
  }

  /** CMD_CANCEL_TPM_CMD. */
  async cancelTpmCmd(opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'CANCEL_TPM_CMD' }, opts);
  }

  /** CMD_STORE_VOLATILE: writes the volatile state to the state storage. */
  async storeVolatile(opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'STORE_VOLATILE' }, opts);
  }

  /** CMD_RESET_TPMESTABLISHED from `locality` (TPM 2 requires 3 or 4). */
  async resetTpmEstablished(locality: number, opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'RESET_TPMESTABLISHED', locality }, opts);
  }

  /**
   * CMD_GET_STATEBLOB: the whole blob. Resolves undefined when the server has no such
   * blob (a result with TPM_RETRY set, e.g. the TPM 2 savestate), as QEMU treats it.
   */
  async getStateBlob(
    type: BlobType,
    options: CallOptions & { decrypted?: boolean; offset?: number } = {},
  ): Promise<StateBlob | undefined> {
    const stateFlags = (options.decrypted ?? true) ? PTM_STATE_FLAG_DECRYPTED : 0;
    const req = {
      cmd: 'GET_STATEBLOB',
      stateFlags,
      type: blobType(type),
      offset: options.offset ?? 0,
    } as const;
    const rsp = await this.request(req, options);
    if (rsp.result !== 0 && (rsp.result & TPM_RETRY) !== 0) return undefined;
    if (rsp.result !== 0) throw new TpmError(req.cmd, rsp.result);
    const flags = rsp.stateFlags ?? 0;
    return {
      data: rsp.data ?? new Uint8Array(0),
      stateFlags: flags,
      encrypted: (flags & PTM_STATE_FLAG_ENCRYPTED) !== 0,
    };
  }

  /** CMD_SET_STATEBLOB (TPM stopped). `encrypted`: the blob is encrypted with the state-file key. */
  async setStateBlob(
    type: BlobType,
    data: Uint8Array,
    options: CallOptions & { encrypted?: boolean } = {},
  ): Promise<void> {
    const stateFlags = options.encrypted ? PTM_STATE_FLAG_ENCRYPTED : 0;
    const req = {
      cmd: 'SET_STATEBLOB',
      stateFlags,
      type: blobType(type),
      length: data.length,
      data,
    } as const;
    await this.ok(req, options);
  }

  /** CMD_STOP: stops the TPM; the process keeps running. */
  async stop(opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'STOP' }, opts);
  }

  /** CMD_GET_CONFIG: which keys are in use. */
  async getConfig(opts?: CallOptions): Promise<Config> {
    const rsp = await this.ok({ cmd: 'GET_CONFIG' }, opts);
    const flags = rsp.flags ?? 0;
    return {
      flags,
      fileKey: (flags & PTM_CONFIG_FLAG_FILE_KEY) !== 0,
      migrationKey: (flags & PTM_CONFIG_FLAG_MIGRATION_KEY) !== 0,
    };
  }

  /**
   * CMD_SET_DATAFD: passes `fd` (a connected socket, e.g. one end of a socketpair) with
   * SCM_RIGHTS; it becomes the data channel. Unix control sockets only. The caller
   * still owns (and should close) its copy of `fd`.
   */
  async setDataFd(fd: number, opts?: CallOptions): Promise<void> {
    const addr = this.address;
    if ('device' in addr) {
      const path = typeof addr.device === 'string' ? addr.device : addr.device.path;
      throw new TpmConnectionError(path, 'EAFNOSUPPORT');
    }
    if (!('path' in addr)) throw new TpmConnectionError(describe(addr), 'EAFNOSUPPORT');
    await this.ok({ cmd: 'SET_DATAFD' }, opts, [fd]);
  }

  /** CMD_SET_BUFFERSIZE: 0 queries; other sizes need a stopped TPM. */
  async setBufferSize(bufferSize = 0, opts?: CallOptions): Promise<BufferSizes> {
    const rsp = await this.ok({ cmd: 'SET_BUFFERSIZE', bufferSize }, opts);
    return {
      bufferSize: rsp.bufferSize ?? 0,
      minSize: rsp.minSize ?? 0,
      maxSize: rsp.maxSize ?? 0,
    };
  }

  /** CMD_GET_INFO as text (the JSON libtpms produced), read chunk by chunk. */
  async getInfoText(flags: number | bigint, opts?: CallOptions): Promise<string> {
    const parts: Uint8Array[] = [];
    let offset = 0;
    for (;;) {
      const rsp = await this.ok({ cmd: 'GET_INFO', flags: BigInt(flags), offset }, opts);
      const got = rsp.buffer ?? new Uint8Array(0);
      parts.push(got);
      offset += got.length;
      if (got.length === 0 || offset >= (rsp.totLength ?? 0)) break;
    }
    const text = Buffer.concat(parts).toString('utf8');
    const nul = text.indexOf('\0');
    return nul < 0 ? text : text.slice(0, nul);
  }

  /** CMD_GET_INFO parsed: `getInfo(1)` → `{ TPMSpecification: { family: '2.0', … } }`. */
  async getInfo(flags: number | bigint, opts?: CallOptions): Promise<Record<string, unknown>> {
    return JSON.parse(await this.getInfoText(flags, opts)) as Record<string, unknown>;
  }

  /** CMD_LOCK_STORAGE (swtpm 0.8+): lock the state storage, retrying every 10 ms. */
  async lockStorage(retries = 0, opts?: CallOptions): Promise<void> {
    await this.ok({ cmd: 'LOCK_STORAGE', retries }, opts);
  }
}
