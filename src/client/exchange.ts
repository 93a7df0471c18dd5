import {
  decodeSocketResponse,
  respDataField,
  respFixedSize,
} from '../protocol/ctrl/client-codec.js';
/**
 * One control-channel round trip over a Wire: the request (code and body in one
 * write, as swtpm requires), then exactly the response's bytes, framed with the
 * table's layouts so that a persistent connection stays in step.
 */
import {
  type CtrlDef,
  type CtrlRequest,
  type CtrlResponse,
  defByName,
  encodeSocketRequest,
} from '../protocol/ctrl/index.js';
import { TPM_BAD_ORDINAL, TPM_BAD_PARAMETER } from '../protocol/tpm/results.js';
import { TpmProtocolError, TpmTimeoutError } from './errors.js';
import { type Wire, readExact } from './wire.js';

/** Thrown inside an exchange when the deadline passes; the caller closes the wire. */
export class DeadlineError extends Error {}

async function need(w: Wire, n: number, deadline: number | undefined, def: CtrlDef, got: number) {
  if (n === 0) return Buffer.alloc(0);
  const b = await readExact(w, n, deadline);
  if (b === undefined) throw new DeadlineError();
  if (b === null || b.length < n) {
    const have = got + (b?.length ?? 0);
    throw new TpmProtocolError(`CMD_${def.name}: connection closed after ${have} response bytes`);
  }
  return b;
}

/**
 * How many header bytes follow a non-zero result. Errors answer with the bare result,
 * except GET_STATEBLOB failures while fetching the blob (TPM_RETRY for a missing blob,
 * decryption errors), which carry the whole 16-byte header (control-channel.md §2.4).
 */
function errorTail(def: CtrlDef, result: number): number {
  if (def.name !== 'GET_STATEBLOB') return 0;
  return result === TPM_BAD_ORDINAL || result === TPM_BAD_PARAMETER ? 0 : respFixedSize(def) - 4;
}

/** Sends `req` and reads its response; `deadline` is in ms since the epoch. */
export async function exchange(
  w: Wire,
  req: CtrlRequest,
  deadline: number | undefined,
  fds: readonly number[] = [],
): Promise<CtrlResponse> {
  const def = defByName(req.cmd);
  await w.write(encodeSocketRequest(req, def), fds);
  const head = await need(w, 4, deadline, def, 0);
  const result = head.readUInt32BE(0);
  const fixed = respFixedSize(def);
  // GET_CAPABILITY is one u64 whose upper half is the result 0.
  const more = result === 0 || def.name === 'GET_CAPABILITY' ? fixed - 4 : errorTail(def, result);
  const rest = await need(w, more, deadline, def, 4);
  let msg = Buffer.concat([head, rest]);
  const dataField = respDataField(def);
  if (dataField && msg.length >= fixed) {
    const rsp = decodeSocketResponse(def, msg);
    // On the socket GET_STATEBLOB sends the whole blob (totlength) after the header.
    const n = def.name === 'GET_STATEBLOB' ? (rsp.totLength ?? 0) : (rsp.length ?? 0);
    const data = await need(w, n, deadline, def, msg.length);
    msg = Buffer.concat([msg, data]);
    if (def.name === 'GET_STATEBLOB') return { ...rsp, length: n, data };
  }
  return decodeSocketResponse(def, msg);
}

/**
 * The peer had closed a kept connection before it read our request (write failed, or
 * end of stream before the first response byte): safe to send again once.
 */
export function closedBeforeAnswer(e: unknown): boolean {
  const code = (e as { code?: string } | undefined)?.code;
  if (code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_CHANNEL_CLOSED') return true;
  return e instanceof TpmProtocolError && / after 0 (response )?bytes$/.test(e.message);
}

/** Runs `fn` against a deadline, turning DeadlineError into TpmTimeoutError. */
export async function withDeadline<T>(
  what: string,
  timeoutMs: number | undefined,
  fn: (deadline: number | undefined) => Promise<T>,
  onTimeout: () => void,
): Promise<T> {
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  try {
    return await fn(deadline);
  } catch (e) {
    if (e instanceof DeadlineError) {
      onTimeout();
      throw new TpmTimeoutError(what, timeoutMs ?? 0);
    }
    throw e;
  }
}
