/**
 * Control requests, socket view (src/protocol/ctrl/socket.ts): any bytes a control
 * client sends. Properties: decoding never throws; a body-length violation is
 * TPM_BAD_PARAMETER and an unknown code result 0 with no entry (→ TPM_BAD_ORDINAL);
 * socketBytesNeeded is 4 + the entry's fixed body; a decoded request re-encodes to the
 * bytes it came from and decodes again to the same value; a response for the entry
 * encodes to at least the 4-byte result, which comes first.
 */
import {
  CTRL_TABLE,
  type CtrlResponse,
  decodeSocketRequest,
  encodeSocketRequest,
  encodeSocketResponse,
  minBody,
  socketBytesNeeded,
} from '../../../src/protocol/ctrl/index.js';
import { TPM_BAD_PARAMETER } from '../../../src/protocol/tpm/results.js';
import { assert, Input } from './props.js';

const MAX_NEED = 4 + Math.max(...CTRL_TABLE.map(minBody));

export function fuzz(data: Buffer): void {
  const need = socketBytesNeeded(data);
  assert.ok(need >= 4 && need <= MAX_NEED, `socketBytesNeeded ${need}`);
  const d = decodeSocketRequest(data);
  if (data.length < 4) {
    assert.ok(!d.ok && d.def === undefined && d.result === TPM_BAD_PARAMETER);
    return;
  }
  if (!d.ok) {
    if (d.def === undefined) assert.equal(d.result, 0);
    else assert.equal(d.result, TPM_BAD_PARAMETER);
    return;
  }
  assert.ok(data.length >= need, 'decoded before socketBytesNeeded was reached');
  assert.equal(d.req.cmd, d.def.name);
  const again = encodeSocketRequest(d.req, d.def);
  if (d.def.body.kind === 'exact') assert.equal(again.length, data.length);
  assert.ok(again.length <= data.length, 're-encoding is longer than the request');
  assert.deepEqual(again, data.subarray(0, again.length), 're-encoding differs');
  const d2 = decodeSocketRequest(again);
  assert.ok(d2.ok);
  assert.deepEqual(d2.req, d.req);
  checkResponse(d.def, new Input(data.subarray(4)));
}

/** Fills the entry's response fields from the input and checks the encoding. */
function checkResponse(def: (typeof CTRL_TABLE)[number], inp: Input): void {
  const complete = inp.u8() & 1;
  const rsp: Record<string, unknown> = { result: inp.u16() * 0x10001 };
  if (complete) {
    for (const f of def.resp) {
      if (f.name === 'result') continue;
      if (f.type === 'u8') rsp[f.name] = inp.u8();
      else if (f.type === 'u32') rsp[f.name] = inp.u16() * 0x10001;
      else if (f.type === 'u64') rsp[f.name] = BigInt(inp.u16()) << 24n;
      else rsp[f.name] = inp.bytes(inp.u16() % (f.max! + 1));
    }
  }
  const out = encodeSocketResponse(def, rsp as unknown as CtrlResponse);
  assert.ok(out.length >= 4);
  if (def.resp.some((f) => f.name === 'result')) {
    assert.equal(out.readUInt32BE(0), (rsp.result as number) >>> 0);
  }
  if (!complete && def.resp.length > 0) assert.equal(out.length, 4);
}
