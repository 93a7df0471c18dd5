/**
 * --save / --load with tswtpm_ioctl between servers: a PCR extended on the source TPM
 * reads the same on the destination after permanent + volatile blobs were moved and
 * the destination was INITed (QEMU's migration order: SET perm, SET vol, INIT).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { TpmClient } from '../../src/client/tpm.js';
import { parsePcrRead2, pcrExtend2, pcrRead2, startup2 } from '../../src/protocol/tpm/commands.js';
import {
  type Swtpm,
  type SwtpmOptions,
  TSWTPM,
  runIoctl,
  startSwtpm,
} from '../helpers/start-swtpm.js';

const work = mkdtempSync(join(tmpdir(), 'ioctl-saveload-'));
after(() => rmSync(work, { recursive: true, force: true }));

const KINDS: Record<string, SwtpmOptions> = { debian: {}, tswtpm: { command: TSWTPM } };

async function ioctl(s: Swtpm, ...args: string[]): Promise<void> {
  const r = await runIoctl('ts', [...s.ioctlArgs, ...args], { cwd: work });
  assert.deepEqual(r, { stdout: '', stderr: '', code: 0 }, args.join(' '));
}

describe('tswtpm_ioctl --save/--load between TPMs', () => {
  const pairs: Array<[string, string]> = [
    ['debian', 'debian'],
    ['debian', 'tswtpm'],
    ['tswtpm', 'debian'],
  ];
  for (const [from, to] of pairs) {
    it(`${from} → ${to}: PCR 10 survives`, async () => {
      const a = await startSwtpm(KINDS[from]);
      const b = await startSwtpm(KINDS[to]);
      const ta = new TpmClient(a.server!);
      const tb = new TpmClient(b.server!);
      try {
        await ioctl(a, '-i');
        assert.equal((await ta.transmit(startup2())).readUInt32BE(6), 0);
        const ext = await ta.transmit(pcrExtend2(10, Buffer.alloc(32, 0x5a)));
        assert.equal(ext.readUInt32BE(6), 0);
        const before = parsePcrRead2(await ta.transmit(pcrRead2(10)));
        assert.notDeepEqual(before, Buffer.alloc(32));
        const p = `${from}-${to}-perm.bin`;
        const v = `${from}-${to}-vol.bin`;
        await ioctl(a, '--save', 'permanent', p);
        await ioctl(a, '--save', 'volatile', v);
        assert.ok(statSync(join(work, v)).size > 3072, 'volatile blob is streamed past one chunk');
        await ioctl(b, '--load', 'permanent', p);
        await ioctl(b, '--load', 'volatile', v);
        await ioctl(b, '-i');
        assert.deepEqual(parsePcrRead2(await tb.transmit(pcrRead2(10))), before);
      } finally {
        await ta.close();
        await tb.close();
        await Promise.all([a.close(), b.close()]);
      }
    });
  }
});
