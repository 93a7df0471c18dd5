/**
 * The commands of tswtpm_ioctl, step for step as swtpm_ioctl 0.7.1 performs them
 * (read sizes, chunking, which results are checked, message texts), observed with
 * strace and fake servers. Each returns the process exit code. The state blob
 * commands are in ioctl-blob.ts.
 */
import { respFixedSize } from '../../protocol/ctrl/client-codec.js';
import {
  type CtrlName,
  type CtrlRequest,
  PTM_HASH_DATA_SIZE,
  defByName,
} from '../../protocol/ctrl/index.js';
import { errText } from '../common/sys.js';
import { type Channel, ChannelError, type Exchange } from './ioctl-conn.js';

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
export function resultOk(io: Io, cmd: CtrlName, result: number): boolean {
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
