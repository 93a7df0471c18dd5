// Child process for instances-crash.test.ts: one in-process TPM per state directory
// given on the command line, each incrementing its NV counter as fast as it can.
// Prints `ready` once every counter is defined, then `<tpm> <value>` for every
// acknowledged increment, until it is killed.
import { startTpmInProcess } from '../../src/index.js';
import { TPMA_NV, nvDefineSpace2, nvIncrement2, nvRead2 } from '../../src/protocol/tpm/commands.js';

export const CRASH_NV_INDEX = 0x01500016;
// NO_DA: every SIGKILL is an unorderly shutdown, which would count as a DA failure.
const ATTRS =
  TPMA_NV.OWNERWRITE |
  TPMA_NV.AUTHWRITE |
  TPMA_NV.NT_COUNTER |
  TPMA_NV.OWNERREAD |
  TPMA_NV.AUTHREAD |
  TPMA_NV.NO_DA;
const TPM_RC_NV_DEFINED = 0x14c;
const TPM_RC_RETRY = 0x922;
const rc = (r: Uint8Array) => Buffer.from(r).readUInt32BE(6);

async function main(dirs: string[]): Promise<void> {
  const tpms = await Promise.all(dirs.map((stateDir) => startTpmInProcess({ stateDir })));
  const send = async (i: number, cmd: Buffer) => {
    for (;;) {
      const r = await tpms[i]!.tpm.transmit(cmd);
      if (rc(r) !== TPM_RC_RETRY) return r;
    }
  };
  const values: bigint[] = [];
  for (const i of tpms.keys()) {
    const d = rc(await send(i, nvDefineSpace2(CRASH_NV_INDEX, 8, ATTRS)));
    if (d === 0) await send(i, nvIncrement2(CRASH_NV_INDEX));
    else if (d !== TPM_RC_NV_DEFINED) throw new Error(`NV_DefineSpace: 0x${d.toString(16)}`);
    const r = await send(i, nvRead2(CRASH_NV_INDEX, 8));
    values.push(Buffer.from(r).readBigUInt64BE(16));
  }
  process.stdout.write('ready\n');
  await Promise.all(
    tpms.map(async (_, i) => {
      for (;;) {
        if (rc(await send(i, nvIncrement2(CRASH_NV_INDEX))) !== 0) continue;
        values[i]! += 1n;
        process.stdout.write(`${i} ${values[i]}\n`);
      }
    }),
  );
}

if (process.argv[1]?.endsWith('instances-child.js')) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
}
