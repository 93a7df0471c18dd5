// Test doubles for the CUSE front end: an in-memory DeviceStorage, and a "kernel" that
// plays the kernel's side of the FUSE protocol on a SOCK_SEQPACKET socketpair (one
// datagram = one read()/write() of /dev/cuse).
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { CuseSession, type CuseSessionOptions } from '../../src/device/cuse-session.js';
import { Device } from '../../src/device/device.js';
import type { DeviceStorage } from '../../src/device/types.js';
import type { StateName } from '../../src/engine/types.js';
import {
  type CtrlDef,
  type CtrlName,
  type CtrlRequest,
  type CtrlResponse,
  decodeIoctlResponse,
  defByName,
  encodeIoctlRequest,
  ioctlNumber,
} from '../../src/protocol/ctrl/index.js';
import * as K from '../../src/protocol/fuse/kernel-side.js';
import { MemoryBackend } from '../../src/storage/memory.js';
import { CuseChannel } from '../../src/transport/cuse.js';
import { FdChannel, socketPair } from '../../src/transport/fd-channel.js';

export const { EBUSY, EINTR, EINVAL, EIO, ENOSYS } = constants.errno;

/** State kept as the raw libtpms blobs; migration blobs are those same bytes. */
export function memoryStorage(): DeviceStorage & { files: Map<StateName, Uint8Array> } {
  const files = new Map<StateName, Uint8Array>();
  return {
    files,
    backend: new MemoryBackend(),
    hasFileKey: false,
    hasMigrationKey: false,
    load: (n) => files.get(n),
    store: (n, d) => {
      files.set(n, Uint8Array.from(d));
    },
    delete: (n) => files.delete(n),
    getMigrationBlob(name, _decrypted, plain) {
      const blob = plain ?? files.get(name);
      return blob === undefined ? undefined : { blob, encrypted: false };
    },
    decodeIncomingBlob: (_name, _flags, blob) => blob,
  };
}

export const CAPS_CUSE = 0x16fff;

export function makeDevice(storage = memoryStorage()): Device {
  return new Device({
    version: '2.0',
    storage,
    flags: { notNeedInit: false, startup: 'none', disableAutoShutdown: false },
    locality: { rejectLocality4: false, allowSetLocality: false },
    caps: CAPS_CUSE,
    incomingMigration: false,
    releaseLockOutgoing: false,
    lockStorage: true,
  });
}

/** The kernel's side: sends requests, reads replies, tracks `unique` like fs/fuse. */
export class FakeKernel {
  readonly ch: FdChannel;
  readonly server: CuseChannel;
  readonly session: CuseSession;
  private seq = 0n;

  constructor(dev: Device, opts: Partial<CuseSessionOptions> = {}) {
    const [k, s] = socketPair('seqpacket');
    this.ch = new FdChannel(k, { bufferSize: 200_000, maxFds: 0 });
    const link = { write: (r: Uint8Array) => this.server.write(r) };
    this.session = new CuseSession(dev, link, { name: 'vtpm0', ...opts });
    this.server = new CuseChannel(s, { onRequest: (r) => this.session.handle(r) });
  }

  /** Even, increasing uniques, as the kernel hands them out. */
  next(): bigint {
    this.seq += 2n;
    return this.seq;
  }

  async send(req: Buffer): Promise<void> {
    await this.ch.write(req);
  }

  async recv(ms = 5000): Promise<K.Reply> {
    const m = await this.ch.read(ms);
    assert.ok(m, 'no reply from the CUSE server');
    return K.parseReply(m.data);
  }

  /** Nothing arrives within `ms`. */
  async silent(ms = 100): Promise<void> {
    const m = await this.ch.read(ms);
    assert.equal(m, null, 'unexpected reply');
  }

  async call(build: (u: bigint) => Buffer): Promise<K.Reply> {
    const u = this.next();
    await this.send(build(u));
    const r = await this.recv();
    assert.equal(r.unique, u);
    return r;
  }

  async init(): Promise<K.Reply> {
    return this.call((u) => K.cuseInitRequest(u));
  }

  async open(): Promise<bigint> {
    const r = await this.call((u) => K.openRequest(u));
    assert.equal(r.error, 0);
    return K.parseOpenReply(r.payload).fh as bigint;
  }

  /** A restricted ioctl as the kernel sends it: sizes from the ioctl number. */
  async ioctl(fh: bigint, def: CtrlDef, arg?: Buffer): Promise<K.Reply> {
    const inSize = def.dir === 'R' ? 0 : def.size;
    const outSize = def.dir === 'W' ? 0 : def.size;
    const data = Buffer.alloc(inSize);
    arg?.copy(data, 0, 0, inSize);
    return this.call((u) => K.ioctlRequest(u, { fh, cmd: ioctlNumber(def), outSize, data }));
  }

  /** A PTM_* ioctl with a typed request; returns the decoded struct (zero-filled). */
  async ptm(fh: bigint, req: CtrlRequest): Promise<CtrlResponse & { raw: Buffer }> {
    const def = defByName(req.cmd as CtrlName);
    const r = await this.ioctl(fh, def, encodeIoctlRequest(def, req));
    assert.equal(r.error, 0, `${req.cmd}: errno ${-r.error}`);
    const io = K.parseIoctlReply(r.payload);
    assert.equal(io.result, 0);
    const whole = Buffer.alloc(def.size);
    io.data.copy(whole);
    return { ...decodeIoctlResponse(def, whole), raw: io.data };
  }

  async write(fh: bigint, data: Uint8Array): Promise<K.Reply> {
    return this.call((u) => K.writeRequest(u, fh, data));
  }

  async read(fh: bigint, size: number): Promise<K.Reply> {
    return this.call((u) => K.readRequest(u, fh, size));
  }

  close(): void {
    this.ch.close();
    this.server.close();
  }
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
