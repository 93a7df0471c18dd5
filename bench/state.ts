import * as T from '../src/protocol/tpm/commands.js';
/**
 * The one permanent state every server of a run starts from (copied per server), so
 * the seeds are the same and key generation does the same work: manufactured by
 * swtpm when it is installed, with NV filled by a few defined and written indices.
 */
import type { RawConn } from './raw.js';
import { type Program, startServer, tempDir } from './servers.js';

/** First NV index the benchmark defines (owner range). */
const NV_BASE = 0x01500000;
/** Size of each index; NV_Write writes at most 1024 bytes at once (MAX_NV_BUFFER_SIZE). */
const NV_SIZE = 1024;

/** A state directory with `nvIndices` indices of 1 KiB defined and written. */
export async function prepareState(program: Program, nvIndices: number): Promise<string> {
  const dir = tempDir('tswtpm-bench-state-');
  const s = await startServer({ program, stateDir: dir, transport: 'tcp' });
  try {
    const c: RawConn = s.conn;
    const expect = async (what: string, cmd: Buffer) => {
      const rsp = await c.request(cmd);
      const { rc } = T.parseResponse(rsp);
      if (rc !== 0) throw new Error(`${what}: rc 0x${rc.toString(16)}`);
    };
    for (let i = 0; i < nvIndices; i++) {
      const index = NV_BASE + i;
      await expect('NV_DefineSpace', T.nvDefineSpace2(index, NV_SIZE));
      await expect('NV_Write', T.nvWrite2(index, Buffer.alloc(NV_SIZE, i + 1), 0));
    }
  } finally {
    await s.stop();
  }
  return dir;
}
