// The data channel's receive loop (src/device/data-session.ts) framing commands that
// arrive in pieces. The device is a recording stand-in: what libtpms answers does not
// matter here, only which bytes are handed to it as one command.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serveData } from '../../src/device/data-session.js';
import type { Device } from '../../src/device/device.js';
import type { Conn } from '../../src/transport/conn.js';

function session(allowPrefix: boolean) {
  const units: string[] = [];
  const dev = {
    tpmCommand: (cmd: Uint8Array) => {
      units.push(Buffer.from(cmd).toString('hex'));
      return Buffer.from('80010000000a00000000', 'hex');
    },
  } as unknown as Device;
  const conn: Conn = {
    peer: 'test',
    write: () => true,
    close: () => {},
    pause: () => {},
    resume: () => {},
    onData: () => {},
    onEnd: () => {},
    onDrain: () => {},
    onClose: () => {},
  };
  serveData(dev, conn, { disconnect: false, allowPrefix, completionMs: 60_000 });
  return { units, conn };
}

// TPM2_Startup(CLEAR) behind the TCG send-command prefix (cmd 8, locality 0, size 12).
const PREFIXED = '00000008' + '00' + '0000000c' + '80010000000c00000144' + '0000';

describe('data session framing', () => {
  for (const cut of [9, 10, 12, 14, 15, 20]) {
    it(`a prefixed command split after ${cut} bytes is one command`, () => {
      const { units, conn } = session(true);
      const b = Buffer.from(PREFIXED, 'hex');
      conn.onData(b.subarray(0, cut), []);
      conn.onData(b.subarray(cut), []);
      conn.onClose();
      assert.deepEqual(units, [PREFIXED]);
    });
  }

  it('a plain command split after its first 10 bytes is one command', () => {
    const { units, conn } = session(true);
    const b = Buffer.from('80010000000c000001440000', 'hex');
    conn.onData(b.subarray(0, 10), []);
    conn.onData(b.subarray(10), []);
    conn.onClose();
    assert.deepEqual(units, ['80010000000c000001440000']);
  });
});
