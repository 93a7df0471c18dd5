/**
 * tswtpm_ioctl's channel to the TPM, modelled on swtpm_ioctl's ctrlcmd(): the request
 * and response share one buffer (the ioctl union), a socket request is written as
 * code + the used request bytes, then ONE read of at most `readLen` bytes after a
 * 20 s poll lands at the start of that buffer. Whatever was not overwritten keeps the
 * request's bytes, exactly as in C. On a character device (CUSE) the whole union goes
 * through ioctl() instead, in host byte order.
 */
import { lookup } from 'node:dns/promises';
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import net from 'node:net';
import type { Wire } from '../../client/wire.js';
import { decodeSocketResponse } from '../../protocol/ctrl/client-codec.js';
import {
  type CtrlDef,
  type CtrlRequest,
  type CtrlResponse,
  decodeIoctlResponse,
  encodeIoctlRequest,
  encodeSocketRequest,
  ioctlNumber,
} from '../../protocol/ctrl/index.js';
import { ioctl, readDevice, writeDevice } from '../../transport/chardev.js';
import { errText, gaiText, strerror } from '../common/sys.js';

/** swtpm_ioctl 0.7.1 polls 20 s for each response. */
export const POLL_MS = 20000;

/** A failed exchange; `text` is strerror() of the cause. */
export class ChannelError extends Error {
  constructor(readonly text: string) {
    super(text);
  }
}

export interface Exchange {
  readonly union: Buffer;
  /** Bytes read (socket), or the union size after a successful ioctl. */
  readonly n: number;
  readonly rsp: CtrlResponse;
}

export interface Channel {
  /** Opened as a device (CUSE): integers in host byte order. */
  readonly device: boolean;
  /**
   * One command. `readLen` 0 sends without reading a response (swtpm_ioctl does so for
   * all but the last SET_STATEBLOB chunk). Rejects with ChannelError.
   */
  ctrlcmd(def: CtrlDef, req: CtrlRequest, readLen: number): Promise<Exchange>;
  /**
   * One plain read() / write() without timeout, as in C: blob streaming on a socket,
   * the read()/write() blob transfer modes on a device. read() resolves null at the
   * end of a stream (a device answers 0 bytes instead).
   */
  read(max: number): Promise<Buffer | null>;
  write(buf: Uint8Array): Promise<void>;
  close(): void;
}

export type Target =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'device'; readonly path: string };

function requestUnion(def: CtrlDef, req: CtrlRequest, device: boolean) {
  const body = encodeSocketRequest(req, def).subarray(4);
  const union = Buffer.alloc(Math.max(def.size, body.length));
  if (device) union.set(encodeIoctlRequest(def, req).subarray(0, def.size));
  else union.set(body);
  return { union, reqLen: body.length };
}

function decode(def: CtrlDef, union: Buffer, device: boolean): CtrlResponse {
  return device ? decodeIoctlResponse(def, union) : decodeSocketResponse(def, union);
}

function fail(e: unknown): never {
  throw new ChannelError(errText(e));
}

/** Socket framing over a Wire (TCP or Unix). */
function streamChannel(w: Wire, device: boolean): Channel {
  return {
    device,
    async ctrlcmd(def, req, readLen) {
      const { union, reqLen } = requestUnion(def, req, device);
      const out = Buffer.alloc(4 + reqLen);
      out.writeUInt32BE(def.code, 0);
      union.copy(out, 4, 0, reqLen);
      await w.write(out).catch(fail);
      if (readLen === 0) return { union, n: 0, rsp: decode(def, union, device) };
      const b = await w.read(readLen, POLL_MS).catch(fail);
      if (b === undefined) throw new ChannelError(strerror('ETIMEDOUT'));
      b?.copy(union, 0);
      return { union, n: b?.length ?? 0, rsp: decode(def, union, device) };
    },
    read: async (max) => (await w.read(max).catch(fail)) ?? null,
    write: (buf) => w.write(buf).catch(fail),
    close: () => w.close(),
  };
}

/** A non-socket, non-character "device" (a regular file, a FIFO): socket framing, C I/O. */
function fileWire(fd: number): Wire {
  const io = <T>(f: () => T): Promise<T> => {
    try {
      return Promise.resolve(f());
    } catch (e) {
      return Promise.reject(e);
    }
  };
  return {
    write: (buf) => io(() => void writeSync(fd, buf)),
    read: (max) =>
      io(() => {
        const b = Buffer.alloc(max);
        const n = readSync(fd, b, 0, max, null);
        return n === 0 ? null : b.subarray(0, n);
      }),
    ended: false,
    close: () => closeSync(fd),
  };
}

/** A character device (CUSE): the whole union through ioctl(), host byte order. */
function ioctlChannel(fd: number): Channel {
  const sysFail = (e: unknown): never => {
    throw new ChannelError(strerror((e as { errno?: number }).errno ?? 'EIO'));
  };
  return {
    device: true,
    async ctrlcmd(def, req, _readLen) {
      const { union } = requestUnion(def, req, true);
      const arg = union.subarray(0, def.size);
      const errno = await ioctl(fd, ioctlNumber(def), arg);
      if (errno !== 0) throw new ChannelError(strerror(errno));
      return { union, n: def.size, rsp: decode(def, union, true) };
    },
    read: (max) => readDevice(fd, max).catch(sysFail),
    async write(buf) {
      const n = await writeDevice(fd, buf).catch(sysFail);
      if (n !== buf.length) throw new ChannelError(strerror('EIO'));
    },
    close: () => closeSync(fd),
  };
}

/** The socket client code, loaded only for --tcp/--unix (a device needs none of it). */
const sockets = () => import('../../client/wire.js');

/** Connects like swtpm_ioctl; on failure writes its message to `err` and resolves undefined. */
export async function openChannel(
  t: Target,
  err: (s: string) => void,
): Promise<Channel | undefined> {
  if (t.kind === 'device') {
    let fd: number;
    try {
      fd = openSync(t.path, 'r+');
    } catch {
      err(`Unable to open device '${t.path}'.\n`);
      return undefined;
    }
    if (fstatSync(fd).isCharacterDevice()) return ioctlChannel(fd);
    return streamChannel(fileWire(fd), true);
  }
  if (t.kind === 'unix') {
    if (Buffer.byteLength(t.path) >= 108) {
      err('Socket path is too long.\n');
      return undefined;
    }
    try {
      const { socketWire } = await sockets();
      return streamChannel(socketWire(await connectPath(t.path)), false);
    } catch (e) {
      err(`Connect failed: ${errText(e)}\n`);
      return undefined;
    }
  }
  let addrs: { address: string }[];
  try {
    if (t.host === '') throw Object.assign(new Error('empty host'), { code: 'ENOTFOUND' });
    addrs = await lookup(t.host, { all: true });
  } catch (e) {
    err(`getaddrinfo failed on host '${t.host}': ${gaiText(e)}\n`);
    return undefined;
  }
  let last: unknown;
  const { connectTcp, socketWire } = await sockets();
  for (const a of addrs) {
    try {
      return streamChannel(socketWire(await connectTcp(a.address, t.port)), false);
    } catch (e) {
      last = (e as Error).cause ?? e;
    }
  }
  err(
    `Could not connect to host '${t.host}' on port '${t.port}' using TCP socket: ${errText(last)}\n`,
  );
  return undefined;
}

async function connectPath(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path });
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      s.destroy();
      reject(e);
    });
  });
}
