/**
 * Control requests, ioctl view (src/protocol/ctrl/ioctl.ts): the PTM_* argument a CUSE
 * client passes. Properties: defByIoctl(n) finds an entry only for its own number;
 * decoding a whole argument never throws, variable data stays within the struct's
 * room, and re-encoding gives back every request field's bytes; the response half
 * round-trips through decodeIoctlResponse / encodeIoctlResponse the same way.
 */
import {
  CTRL_TABLE,
  type CtrlDef,
  type Field,
  decodeIoctlRequest,
  decodeIoctlResponse,
  defByIoctl,
  encodeIoctlRequest,
  encodeIoctlResponse,
  ioctlNumber,
} from '../../../src/protocol/ctrl/index.js';
import { assert, Input } from './props.js';

function width(f: Field, v: unknown): number {
  if (f.type === 'u8') return 1;
  if (f.type === 'u32') return 4;
  if (f.type === 'u64') return 8;
  return (v as Uint8Array).length;
}

/** The argument's bytes that the fields cover must come back unchanged. */
function sameFields(
  fields: readonly Field[],
  values: Record<string, unknown>,
  a: Buffer,
  b: Buffer,
) {
  for (const f of fields) {
    const n = width(f, values[f.name]);
    assert.deepEqual(b.subarray(f.off, f.off + n), a.subarray(f.off, f.off + n), f.name);
  }
}

export function fuzz(data: Buffer): void {
  const inp = new Input(data);
  const number = ((inp.u16() << 16) | inp.u16()) >>> 0;
  const found = defByIoctl(number);
  if (found !== undefined) assert.equal(ioctlNumber(found), number);
  const def: CtrlDef = found ?? CTRL_TABLE[number % CTRL_TABLE.length]!;
  // The kernel always copies the whole struct for a restricted ioctl.
  const arg = Buffer.alloc(def.size);
  inp.rest().copy(arg);

  const req = decodeIoctlRequest(def, arg) as unknown as Record<string, unknown>;
  assert.equal(req.cmd, def.name);
  for (const f of def.req) {
    if (f.type === 'bytes') assert.ok((req[f.name] as Uint8Array).length <= f.max!);
  }
  sameFields(def.req, req, arg, encodeIoctlRequest(def, req as never));

  const rsp = decodeIoctlResponse(def, arg) as unknown as Record<string, unknown>;
  const { buf, length } = encodeIoctlResponse(def, rsp as never);
  assert.equal(buf.length, def.size);
  if (def.resp.length === 0) return;
  assert.equal(length, def.size);
  sameFields(def.resp, rsp, arg, buf);
}
