/**
 * The commands of tswtpm_ioctl, step for step as swtpm_ioctl 0.7.1 performs them
 * (read sizes, chunking, which results are checked, message texts), observed with
 * strace and fake servers. Each returns the process exit code.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { respFixedSize, respMaxSize } from '../protocol/ctrl/client-codec.js';
import {
  type CtrlName,
  type CtrlRequest,
  PTM_BLOB_TYPE_PERMANENT,
  PTM_BLOB_TYPE_SAVESTATE,
  PTM_BLOB_TYPE_VOLATILE,
  PTM_HASH_DATA_SIZE,
  PTM_STATE_BLOB_SIZE,
  PTM_STATE_FLAG_DECRYPTED,
  defByName,
} from '../protocol/ctrl/index.js';
import { TPM_RETRY } from '../protocol/tpm/results.js';
import { type Channel, ChannelError, type Exchange } from './ioctl-conn.js';
import { errText } from './ioctl-sys.js';

export interface Io {
  out(s: string | Uint8Array): void;
  err(s: string): void;
  /** Blocking read of stdin (fd 0): up to `max` bytes, 0 at end of input. */
  stdin(buf: Buffer): number;
}

/** Names swtpm_ioctl prints: "Could not execute <exec>" and "TPM result from <res>". */
const EXEC_NAME: Partial<Record<CtrlName, string>> = {
  GET_TPMESTABLISHED: 'PTM_GET_ESTABLISHED',
  RESET_TPMESTABLISHED: 'PTM_RESET_ESTABLISHED',
  HASH_START: 'ioctl PTM_HASH_START',
  HASH_DATA: 'ioctl PTM_HASH_DATA',
  HASH_END: 'ioctl PTM_HASH_END',
  GET_STATEBLOB: 'ioctl PTM_GET_STATEBLOB',
  SET_STATEBLOB: 'ioctl PTM_SET_STATEBLOB',
};

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

/** ctrlcmd + "Could not execute" on failure; undefined then. */
export async function exec(
  ch: Channel,
  io: Io,
  req: CtrlRequest,
  readLen = respFixedSize(defByName(req.cmd)),
): Promise<Exchange | undefined> {
  try {
    return await ch.ctrlcmd(defByName(req.cmd), req, readLen);
  } catch (e) {
    const text = e instanceof ChannelError ? e.text : errText(e);
    io.err(`Could not execute ${EXEC_NAME[req.cmd] ?? `PTM_${req.cmd}`}: ${text}\n`);
    return undefined;
  }
}

/** "TPM result from PTM_<NAME>: 0x<hex>" for a non-zero result. */
function resultOk(io: Io, cmd: CtrlName, result: number): boolean {
  if (result === 0) return true;
  io.err(`TPM result from PTM_${cmd}: ${hex(result)}\n`);
  return false;
}

/** A command whose response is a result (plus fields printed by `show`). */
export async function simple(
  ch: Channel,
  io: Io,
  req: CtrlRequest,
  show?: (x: Exchange) => void,
  readLen?: number,
): Promise<number> {
  const x = await exec(ch, io, req, readLen);
  if (!x) return 1;
  if (req.cmd !== 'GET_CAPABILITY' && !resultOk(io, req.cmd, x.rsp.result)) return 1;
  show?.(x);
  return 0;
}

/** `-h <data>` / `-h -`: HASH_START, 4096-byte HASH_DATA chunks, HASH_END. */
export async function hash(ch: Channel, io: Io, data: string): Promise<number> {
  if ((await simple(ch, io, { cmd: 'HASH_START' })) !== 0) return 1;
  const send = (chunk: Uint8Array) =>
    simple(ch, io, { cmd: 'HASH_DATA', length: chunk.length, data: chunk });
  if (data === '-') {
    // stdio semantics: fill the chunk until full or EOF, send it (even empty), repeat while full
    let n: number;
    do {
      const buf = Buffer.alloc(PTM_HASH_DATA_SIZE);
      n = 0;
      for (;;) {
        const r = io.stdin(buf.subarray(n));
        if (r <= 0) break;
        n += r;
        if (n === buf.length) break;
      }
      if ((await send(buf.subarray(0, n))) !== 0) return 1;
    } while (n === PTM_HASH_DATA_SIZE);
  } else {
    const bytes = Buffer.from(data);
    for (let off = 0; off < bytes.length; off += PTM_HASH_DATA_SIZE) {
      if ((await send(bytes.subarray(off, off + PTM_HASH_DATA_SIZE))) !== 0) return 1;
    }
  }
  return simple(ch, io, { cmd: 'HASH_END' });
}

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

/** `--save <type> <file>`: GET_STATEBLOB (decrypted); the socket streams the rest. */
export async function save(ch: Channel, io: Io, typeName: string, file: string): Promise<number> {
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
      ? await saveIoctl(ch, io, type, fd, file)
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
  const res = x.rsp.result;
  if (res !== 0 && (res & TPM_RETRY) === 0) return fail(io, res);
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
      io.err(`Could not read from TPM: ${e instanceof ChannelError ? e.text : errText(e)}\n`);
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

/** CUSE: PTM_GET_STATEBLOB chunks of up to 3072 bytes at increasing offsets. */
async function saveIoctl(ch: Channel, io: Io, type: number, fd: number, file: string) {
  let offset = 0;
  for (;;) {
    const req = {
      cmd: 'GET_STATEBLOB',
      stateFlags: PTM_STATE_FLAG_DECRYPTED,
      type,
      offset,
    } as const;
    const x = await exec(ch, io, req);
    if (!x) return 1;
    const res = x.rsp.result;
    if (res !== 0 && (res & TPM_RETRY) === 0) return fail(io, res);
    const data = x.rsp.data ?? new Uint8Array(0);
    try {
      writeAll(fd, data);
    } catch (e) {
      io.err(`Could not write to file '${file}': ${errText(e)}\n`);
      return 1;
    }
    offset += data.length;
    if (data.length === 0 || offset >= (x.rsp.totLength ?? 0)) return 0;
  }
}

/** `--load <type> <file>`: a non-empty regular file is streamed after one header. */
export async function load(
  ch: Channel,
  io: Io,
  typeName: string,
  file: string,
  chunkEnv: number | undefined,
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
    let size: number;
    try {
      size = fstatSync(fd).size;
    } catch (e) {
      io.err(`Could not stat file '${file}': ${errText(e)}\n`);
      return 1;
    }
    if (!ch.device && size > 0) return await loadStream(ch, io, type, fd, size);
    const chunk = ch.device
      ? Math.min(chunkEnv ?? PTM_STATE_BLOB_SIZE, PTM_STATE_BLOB_SIZE)
      : PTM_STATE_BLOB_SIZE;
    return await loadChunks(ch, io, type, fd, file, chunk);
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
    io.err(`Could not execute ioctl PTM_SET_STATEBLOB: ${(e as ChannelError).text}\n`);
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
      io.err(`Could not write to file: ${(e as ChannelError).text}\n`);
      return 1;
    }
    left -= n;
  }
  let rsp: Buffer | null;
  try {
    rsp = await ch.read(4);
  } catch (e) {
    io.err(`Error reading response: ${(e as ChannelError).text}\n`);
    return 1;
  }
  if (rsp === null || rsp.length < 4) {
    io.err(`Did not get enough response bytes from PTM_SET_STATE_BLOB: ${rsp?.length ?? 0}\n`);
    return 1;
  }
  return resultOk(io, 'SET_STATEBLOB', rsp.readUInt32BE(0)) ? 0 : 1;
}

/** One SET_STATEBLOB per chunk; on a socket only the last (short) one is answered. */
async function loadChunks(
  ch: Channel,
  io: Io,
  type: number,
  fd: number,
  file: string,
  chunk: number,
) {
  const def = defByName('SET_STATEBLOB');
  let n: number;
  do {
    const data = Buffer.alloc(chunk);
    try {
      n = readSync(fd, data, 0, chunk, null);
    } catch (e) {
      io.err(`Could not read from file '${file}': ${errText(e)}\n`);
      return 1;
    }
    const last = n < chunk;
    const req = {
      cmd: 'SET_STATEBLOB',
      stateFlags: 0,
      type,
      length: n,
      data: data.subarray(0, n),
    } as const;
    const x = await exec(ch, io, req, ch.device || last ? def.size : 0);
    if (!x) return 1;
    if (!ch.device && !last) continue;
    if (!ch.device && x.n < 4) {
      io.err(`Did not get enough response bytes from PTM_SET_STATE_BLOB: ${x.n}\n`);
      return 1;
    }
    if (!resultOk(io, 'SET_STATEBLOB', x.rsp.result)) return 1;
  } while (n === chunk);
  return 0;
}

/** A GET_STATEBLOB result that is neither success nor TPM_RETRY. */
function fail(io: Io, res: number): number {
  resultOk(io, 'GET_STATEBLOB', res);
  return 1;
}
