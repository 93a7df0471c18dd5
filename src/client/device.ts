/**
 * The CUSE device transport of the client library: PTM_* ioctls (host byte order,
 * the whole struct per call) for ControlClient, write()/read() of TPM commands for
 * TpmClient, on a character device such as the `/dev/vtpm0` of `tswtpm cuse -n vtpm0`
 * or of swtpm's CUSE TPM (control-channel.md §4).
 */
import {
  type CtrlRequest,
  type CtrlResponse,
  PTM_HASH_DATA_SIZE,
  PTM_STATE_BLOB_SIZE,
  decodeIoctlResponse,
  defByName,
  encodeIoctlRequest,
  ioctlNumber,
} from '../protocol/ctrl/index.js';
import { TPM_HEADER_SIZE } from '../protocol/tpm/header.js';
import {
  DeviceCallError,
  closeDevice,
  ioctl,
  openDevice,
  readDevice,
  writeDevice,
} from '../transport/chardev.js';
import { TpmConnectionError, TpmDeviceError, TpmProtocolError } from './errors.js';
import { DeadlineError } from './exchange.js';

/** A CUSE TPM device: its path, or a {@link CuseDevice} shared by several clients. */
export interface DeviceAddress {
  readonly device: string | CuseDevice;
}

/** Largest read() of a TPM response (swtpm's biggest buffer is 4096 bytes). */
const READ_MAX = 65536;

/**
 * An open CUSE TPM device. A CUSE TPM accepts one opener at a time (swtpm 0.8+,
 * tswtpm), so a ControlClient and a TpmClient that work on the same device at the
 * same time must share one CuseDevice; whoever opened it closes it.
 *
 * @example
 * const dev = await CuseDevice.open('/dev/vtpm0');
 * const ctrl = new ControlClient({ device: dev });
 * const tpm = new TpmClient({ device: dev });
 * await ctrl.init();
 * await tpm.transmit(Buffer.from('80010000000c000001440000', 'hex')); // TPM2_Startup
 * await dev.close();
 */
export class CuseDevice {
  readonly path: string;
  private fd: number | undefined;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
  }

  /**
   * Opens `path` read-write. Rejects with {@link TpmConnectionError}: `ENOENT` (no
   * such device), `EBUSY` (another process has it open), `EACCES`, …
   */
  static async open(path: string): Promise<CuseDevice> {
    try {
      return new CuseDevice(path, await openDevice(path));
    } catch (e) {
      throw new TpmConnectionError(path, (e as NodeJS.ErrnoException).code ?? 'EIO', e);
    }
  }

  get closed(): boolean {
    return this.fd === undefined;
  }

  private handle(syscall: string): number {
    if (this.fd === undefined) throw new TpmDeviceError(this.path, syscall, 9); // EBADF
    return this.fd;
  }

  /**
   * One PTM_* ioctl: the request encoded in host byte order into the command's
   * struct, the response decoded from the same struct. At most one struct of data
   * (3072 state-blob bytes, 4096 hash bytes) travels per call; see {@link deviceRequest}
   * for whole blobs. Rejects with {@link TpmDeviceError} when the ioctl fails.
   */
  async ioctl(req: CtrlRequest): Promise<CtrlResponse> {
    const def = defByName(req.cmd);
    const arg = encodeIoctlRequest(def, req);
    const errno = await ioctl(this.handle('ioctl'), ioctlNumber(def), arg);
    if (errno !== 0) throw new TpmDeviceError(this.path, `ioctl PTM_${req.cmd}`, errno);
    return decodeIoctlResponse(def, arg);
  }

  /** One read() of at most `max` bytes (0 bytes: nothing pending). */
  async read(max: number): Promise<Buffer> {
    return readDevice(this.handle('read'), max).catch((e) => this.fail(e));
  }

  /** One write(); on a CUSE TPM one write() is one TPM command. Resolves the bytes taken. */
  async write(data: Uint8Array): Promise<number> {
    return writeDevice(this.handle('write'), data).catch((e) => this.fail(e));
  }

  private fail(e: unknown): never {
    if (e instanceof DeviceCallError) throw new TpmDeviceError(this.path, e.syscall, e.errno);
    throw e;
  }

  /** Closes the device (idempotent). The server then sees RELEASE. */
  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await closeDevice(fd);
  }
}

/**
 * `p`, unless `deadline` (ms since the epoch) passes first: then DeadlineError, and
 * `late` gets the value if it still comes (a call in the kernel cannot be abandoned).
 */
export function beforeDeadline<T>(
  p: Promise<T>,
  deadline: number | undefined,
  late?: (v: T) => void,
): Promise<T> {
  if (deadline === undefined) return p;
  return new Promise<T>((resolve, reject) => {
    let over = false;
    const timer = setTimeout(
      () => {
        over = true;
        reject(new DeadlineError());
      },
      Math.max(0, deadline - Date.now()),
    );
    p.then(
      (v) => {
        clearTimeout(timer);
        if (over) late?.(v);
        else resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        if (!over) reject(e);
      },
    );
  });
}

/**
 * A control request over ioctls, with the socket channel's meaning: GET_STATEBLOB
 * returns the whole blob from `offset` (PTM_GET_STATEBLOB at increasing offsets),
 * SET_STATEBLOB and HASH_DATA take any length (3072- and 4096-byte ioctls; the
 * first non-zero result ends the sequence). Everything else is one ioctl.
 */
export async function deviceRequest(
  dev: Pick<CuseDevice, 'ioctl'>,
  req: CtrlRequest,
  deadline: number | undefined,
): Promise<CtrlResponse> {
  const call = (r: CtrlRequest) => beforeDeadline(dev.ioctl(r), deadline);
  switch (req.cmd) {
    case 'GET_STATEBLOB': {
      const first = await call(req);
      if (first.result !== 0) return first;
      const total = first.totLength ?? 0;
      const parts = [first.data ?? new Uint8Array(0)];
      let offset = req.offset + parts[0]!.length;
      while (offset < total) {
        const r = await call({ ...req, offset });
        if (r.result !== 0) return r;
        const data = r.data ?? new Uint8Array(0);
        if (data.length === 0) break;
        parts.push(data);
        offset += data.length;
      }
      const data = Buffer.concat(parts);
      return { ...first, length: data.length, data };
    }
    case 'SET_STATEBLOB': {
      // 3072 bytes mean "more follows"; the first shorter chunk commits. A first chunk
      // of length 0 would start write() mode instead, so an empty blob is sent as two.
      const chunks = Math.floor(req.data.length / PTM_STATE_BLOB_SIZE) + 1;
      let r: CtrlResponse = { result: 0 };
      if (req.data.length === 0) {
        r = await call(req);
        if (r.result !== 0) return r;
      }
      for (let i = 0; i < chunks; i++) {
        const data = req.data.subarray(i * PTM_STATE_BLOB_SIZE, (i + 1) * PTM_STATE_BLOB_SIZE);
        r = await call({ ...req, length: data.length, data });
        if (r.result !== 0) return r;
      }
      return r;
    }
    case 'HASH_DATA': {
      let r: CtrlResponse = { result: 0 };
      for (let off = 0; off === 0 || off < req.data.length; off += PTM_HASH_DATA_SIZE) {
        const data = req.data.subarray(off, off + PTM_HASH_DATA_SIZE);
        r = await call({ ...req, length: data.length, data });
        if (r.result !== 0) return r;
      }
      return r;
    }
    default:
      return call(req);
  }
}

/**
 * Writes one TPM command and reads its response, in as many read()s as it takes
 * (the device hands out the pending response in pieces of the size asked for).
 */
export async function deviceTransmit(
  dev: Pick<CuseDevice, 'read' | 'write'>,
  command: Uint8Array,
  deadline: number | undefined,
): Promise<Buffer> {
  const n = await beforeDeadline(dev.write(command), deadline);
  if (n !== command.length) {
    throw new TpmProtocolError(`TPM command: the device took ${n} of ${command.length} bytes`);
  }
  const parts: Buffer[] = [];
  let got = 0;
  let size = TPM_HEADER_SIZE;
  while (got < size) {
    const b = await beforeDeadline(dev.read(READ_MAX), deadline);
    if (b.length === 0) {
      throw new TpmProtocolError(`TPM response: the device returned ${got} bytes`);
    }
    parts.push(b);
    got += b.length;
    if (got >= TPM_HEADER_SIZE && size === TPM_HEADER_SIZE) {
      size = Buffer.concat(parts).readUInt32BE(2);
      if (size < TPM_HEADER_SIZE) throw new TpmProtocolError(`TPM response: bad size ${size}`);
    }
  }
  return Buffer.concat(parts);
}
