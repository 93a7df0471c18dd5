/**
 * `--save` and `--load` of tswtpm_ioctl, as swtpm_ioctl 0.7.1 moves state blobs (read
 * from its machine code and checked against it on a CUSE device in the guest test):
 *
 * - socket: one GET_STATEBLOB whose reply streams the whole blob; SET_STATEBLOB with
 *   the file size in the header, then the file bytes (an empty file: one chunk).
 * - device path, SWTPM_IOCTL_BUFFERSIZE unset: PTM_GET_STATEBLOB at increasing
 *   offsets (3072 bytes each), PTM_SET_STATEBLOB in 3072-byte chunks, the first short
 *   chunk (maybe empty) being the last.
 * - device path, SWTPM_IOCTL_BUFFERSIZE=N (N < 1 or unparsable: 1): the first
 *   PTM_GET_STATEBLOB, then read() of N bytes at a time until `totlength` is reached;
 *   PTM_SET_STATEBLOB of length 0 (write mode), write()s of up to N file bytes until
 *   a short one, and PTM_SET_STATEBLOB of length 0 to commit.
 */
import { constants as bufferConstants } from 'node:buffer';
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { respFixedSize, respMaxSize } from '../../protocol/ctrl/client-codec.js';
import {
  PTM_BLOB_TYPE_PERMANENT,
  PTM_BLOB_TYPE_SAVESTATE,
  PTM_BLOB_TYPE_VOLATILE,
  PTM_STATE_BLOB_SIZE,
  PTM_STATE_FLAG_DECRYPTED,
  defByName,
} from '../../protocol/ctrl/index.js';
import { TPM_RETRY } from '../../protocol/tpm/results.js';
import { errText } from '../common/sys.js';
import { type Io, exec, resultOk } from './ioctl-cmds.js';
import { type Channel, ChannelError } from './ioctl-conn.js';

const BLOB_TYPES: Readonly<Record<string, number>> = {
  permanent: PTM_BLOB_TYPE_PERMANENT,
  volatile: PTM_BLOB_TYPE_VOLATILE,
  savestate: PTM_BLOB_TYPE_SAVESTATE,
};

function blobType(io: Io, name: string): number | undefined {
  const t = BLOB_TYPES[name];
  if (t === undefined) io.err(`Unknown TPM state type '${name}'`);
  return t;
}

function writeAll(fd: number, b: Uint8Array): void {
  for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off);
}

const chText = (e: unknown) => (e instanceof ChannelError ? e.text : errText(e));

/** malloc(size) as far as Node can tell: false (and the C message) when it cannot be had. */
function canAllocate(io: Io, size: number | bigint): boolean {
  if (BigInt(size) <= BigInt(bufferConstants.MAX_LENGTH)) return true;
  io.err(`Could not allocate buffer with ${size} bytes.`);
  return false;
}

/** A GET_STATEBLOB result that is neither success nor TPM_RETRY: message, exit 1. */
function getFailed(io: Io, res: number): number | undefined {
  if (res === 0 || (res & TPM_RETRY) !== 0) return undefined;
  resultOk(io, 'GET_STATEBLOB', res);
  return 1;
}

/**
 * `--save <type> <file>`. `bufferSize` is SWTPM_IOCTL_BUFFERSIZE (0: unset), used on a
 * device path only.
 */
export async function save(
  ch: Channel,
  io: Io,
  typeName: string,
  file: string,
  bufferSize: number | bigint,
): Promise<number> {
  const type = blobType(io, typeName);
  if (type === undefined) return 1;
  let fd: number;
  try {
    fd = openSync(file, 'w', 0o600);
  } catch (e) {
    io.err(`Could not open file '${file}' for writing: ${errText(e)}\n`);
    return 1;
  }
  try {
    return ch.device
      ? await saveDevice(ch, io, type, fd, file, bufferSize)
      : await saveStream(ch, io, type, fd, file);
  } finally {
    closeSync(fd);
  }
}

async function saveStream(ch: Channel, io: Io, type: number, fd: number, file: string) {
  const def = defByName('GET_STATEBLOB');
  const req = {
    cmd: 'GET_STATEBLOB',
    stateFlags: PTM_STATE_FLAG_DECRYPTED,
    type,
    offset: 0,
  } as const;
  const x = await exec(ch, io, req, respMaxSize(def));
  if (!x) return 1;
  const failed = getFailed(io, x.rsp.result);
  if (failed !== undefined) return failed;
  const head = respFixedSize(def);
  if (x.n < head) {
    io.err('Too few bytes in response');
    return 1;
  }
  try {
    writeAll(fd, x.union.subarray(head, x.n));
  } catch (e) {
    io.err(`Could not write to file '${file}': ${errText(e)}\n`);
    return 1;
  }
  let remaining = (x.rsp.totLength ?? 0) - (x.n - head);
  if (remaining < 0) {
    io.err(`Unexpected number of remaining bytes: ${remaining}\n`);
    return 1;
  }
  while (remaining > 0) {
    let b: Buffer | null;
    try {
      b = await ch.read(4096);
    } catch (e) {
      io.err(`Could not read from TPM: ${chText(e)}\n`);
      return 1;
    }
    // swtpm_ioctl 0.7.1 spins forever on an early end of stream; this one stops.
    if (b === null) {
      io.err('Could not read from TPM: Connection reset by peer\n');
      return 1;
    }
    try {
      writeAll(fd, b);
    } catch (e) {
      io.err(`Could not write to file: ${errText(e)}\n`);
      return 1;
    }
    remaining -= b.length;
  }
  return 0;
}

/**
 * Device: PTM_GET_STATEBLOB chunks at increasing offsets (a u16 in swtpm_ioctl, so
 * blobs beyond 64 KiB wrap, as there), or read() after the first one. `remaining`
 * counts down from the first reply's totlength and must end at exactly 0.
 */
async function saveDevice(
  ch: Channel,
  io: Io,
  type: number,
  fd: number,
  file: string,
  bufferSize: number | bigint,
) {
  let offset = 0;
  let sum = 0;
  let remaining: number | undefined;
  const unexpected = (n: number) => {
    io.err(`Unexpected number of remaining bytes: ${n}\n`);
    return 1;
  };
  for (;;) {
    const req = {
      cmd: 'GET_STATEBLOB' as const,
      stateFlags: PTM_STATE_FLAG_DECRYPTED,
      type,
      offset,
    };
    // (a non-character "device" path gets one read of up to the struct's size, as in C)
    const x = await exec(ch, io, req, defByName('GET_STATEBLOB').size);
    if (!x) return 1;
    const failed = getFailed(io, x.rsp.result);
    if (failed !== undefined) return failed;
    const total = x.rsp.totLength ?? 0;
    remaining ??= total;
    const data = x.rsp.data ?? new Uint8Array(0); // length, at most 3072
    try {
      writeAll(fd, data);
    } catch (e) {
      io.err(`Could not write to file '${file}': ${errText(e)}\n`);
      return 1;
    }
    remaining -= data.length;
    if (offset + data.length >= total) return remaining === 0 ? 0 : unexpected(remaining);
    if (BigInt(bufferSize) !== 0n) return readRest(ch, io, fd, file, bufferSize, remaining);
    // swtpm_ioctl asks for the same offset for ever when a reply carries no bytes.
    if ((x.rsp.length ?? 0) === 0) return unexpected(remaining);
    sum += x.rsp.length ?? 0;
    offset = sum & 0xffff;
  }
}

/** read() of `bufferSize` bytes at a time until `remaining` reaches 0 (or below). */
async function readRest(
  ch: Channel,
  io: Io,
  fd: number,
  file: string,
  bufferSize: number | bigint,
  remaining: number,
): Promise<number> {
  if (!canAllocate(io, bufferSize)) return 1;
  const size = Number(bufferSize);
  let left = remaining;
  while (left > 0) {
    let b: Buffer | null;
    try {
      b = await ch.read(size);
    } catch (e) {
      io.err(`Could not read from TPM: ${chText(e)}\n`);
      return 1;
    }
    // swtpm_ioctl reads 0 bytes for ever when the device has nothing more; this stops.
    if (b === null || b.length === 0) break;
    left -= b.length;
    try {
      writeAll(fd, b);
    } catch (e) {
      io.err(`Could not write to file '${file}': ${errText(e)}\n`);
      return 1;
    }
  }
  if (left === 0) return 0;
  io.err(`Unexpected number of remaining bytes: ${left}\n`);
  return 1;
}

/** `--load <type> <file>`. `bufferSize` as for save(). */
export async function load(
  ch: Channel,
  io: Io,
  typeName: string,
  file: string,
  bufferSize: number | bigint,
): Promise<number> {
  const type = blobType(io, typeName);
  if (type === undefined) return 1;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    io.err(`Could not open file '${file}' for reading: ${errText(e)}\n`);
    return 1;
  }
  try {
    if (ch.device) {
      return BigInt(bufferSize) !== 0n
        ? await loadWrite(ch, io, type, fd, bufferSize)
        : await loadChunks(ch, io, type, fd, file);
    }
    let size: number;
    try {
      size = fstatSync(fd).size;
    } catch (e) {
      io.err(`Could not stat file '${file}': ${errText(e)}\n`);
      return 1;
    }
    if (size > 0) return await loadStream(ch, io, type, fd, size);
    return await loadChunks(ch, io, type, fd, file);
  } finally {
    closeSync(fd);
  }
}

async function loadStream(ch: Channel, io: Io, type: number, fd: number, size: number) {
  const def = defByName('SET_STATEBLOB');
  const head = Buffer.alloc(16);
  head.writeUInt32BE(def.code, 0);
  head.writeUInt32BE(type, 8);
  head.writeUInt32BE(size, 12);
  try {
    await ch.write(head);
  } catch (e) {
    io.err(`Could not execute ioctl PTM_SET_STATEBLOB: ${chText(e)}\n`);
    return 1;
  }
  const buf = Buffer.alloc(size);
  for (let left = size; left > 0; ) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, left, null);
    } catch (e) {
      io.err(`Could not read from file: ${errText(e)}\n`);
      return 1;
    }
    if (n === 0) break;
    try {
      await ch.write(buf.subarray(0, n));
    } catch (e) {
      io.err(`Could not write to file: ${chText(e)}\n`);
      return 1;
    }
    left -= n;
  }
  let rsp: Buffer | null;
  try {
    rsp = await ch.read(4);
  } catch (e) {
    io.err(`Error reading response: ${chText(e)}\n`);
    return 1;
  }
  if (rsp === null || rsp.length < 4) {
    io.err(`Did not get enough response bytes from PTM_SET_STATE_BLOB: ${rsp?.length ?? 0}\n`);
    return 1;
  }
  return resultOk(io, 'SET_STATEBLOB', rsp.readUInt32BE(0)) ? 0 : 1;
}

/**
 * One SET_STATEBLOB per 3072 file bytes; the first short chunk is the last. On a
 * socket only that one is answered; on a device every ioctl's result is checked.
 */
async function loadChunks(ch: Channel, io: Io, type: number, fd: number, file: string) {
  const def = defByName('SET_STATEBLOB');
  let n: number;
  do {
    const data = Buffer.alloc(PTM_STATE_BLOB_SIZE);
    try {
      n = readSync(fd, data, 0, data.length, null);
    } catch (e) {
      io.err(`Could not read from file '${file}': ${errText(e)}\n`);
      return 1;
    }
    const last = n < PTM_STATE_BLOB_SIZE;
    const req = {
      cmd: 'SET_STATEBLOB',
      stateFlags: 0,
      type,
      length: n,
      data: data.subarray(0, n),
    } as const;
    const x = await exec(ch, io, req, last ? def.size : 0);
    if (!x) return 1;
    if (!ch.device && !last) continue;
    if (!ch.device && x.n < 4) {
      io.err(`Did not get enough response bytes from PTM_SET_STATE_BLOB: ${x.n}\n`);
      return 1;
    }
    if (!resultOk(io, 'SET_STATEBLOB', x.rsp.result)) return 1;
  } while (n === PTM_STATE_BLOB_SIZE);
  return 0;
}

/** Device write mode: PTM_SET_STATEBLOB length 0, write()s, PTM_SET_STATEBLOB length 0. */
async function loadWrite(
  ch: Channel,
  io: Io,
  type: number,
  fd: number,
  bufferSize: number | bigint,
) {
  if (!canAllocate(io, bufferSize)) return 1;
  const size = Number(bufferSize);
  const mark = async (readLen: number) => {
    const req = {
      cmd: 'SET_STATEBLOB' as const,
      stateFlags: 0,
      type,
      length: 0,
      data: Buffer.alloc(0),
    };
    const x = await exec(ch, io, req, readLen);
    return x !== undefined && resultOk(io, 'SET_STATEBLOB', x.rsp.result);
  };
  // The first one expects no reply on a non-character "device" (swtpm_ioctl passes 0).
  if (!(await mark(0))) return 1;
  const buf = Buffer.allocUnsafe(size);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, size, null);
    } catch (e) {
      io.err(`Could not read from file: ${errText(e)}\n`);
      return 1;
    }
    try {
      await ch.write(buf.subarray(0, n));
    } catch (e) {
      io.err(`Could not write to file: ${chText(e)}\n`);
      return 1;
    }
    if (n < size) break;
  }
  return (await mark(4)) ? 0 : 1;
}
