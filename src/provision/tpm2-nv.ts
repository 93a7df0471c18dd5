/**
 * NV indices swtpm_setup defines on a TPM 2 (provisioning.md §2.4): certificates and EK
 * templates, written in 1024-byte chunks and, with --lock-nvram, write-locked for good.
 */
import type { TpmLink } from './link.js';
import { nvDefineSpace, nvWrite, nvWriteLock, responseCode } from './tpm2-cmds.js';

/** TPMA_NV bits of every index swtpm_setup defines. */
export const TPMA_NV = {
  PPWRITE: 0x00000001,
  WRITEDEFINE: 0x00002000,
  PPREAD: 0x00010000,
  OWNERREAD: 0x00020000,
  AUTHREAD: 0x00040000,
  NO_DA: 0x02000000,
  PLATFORMCREATE: 0x40000000,
} as const;

/** 0x42072001: platform-created, readable by owner/auth/pp, writable by pp, lockable. */
export const SETUP_NV_ATTRIBUTES =
  TPMA_NV.PLATFORMCREATE |
  TPMA_NV.NO_DA |
  TPMA_NV.AUTHREAD |
  TPMA_NV.OWNERREAD |
  TPMA_NV.PPREAD |
  TPMA_NV.WRITEDEFINE |
  TPMA_NV.PPWRITE;

export const PLATFORM_CERT_INDEX = 0x01c08000;

/** NV_Write carries at most this many bytes per command. */
export const NV_WRITE_CHUNK = 1024;

/** A TPM command that returned a non-zero response code (`<name> failed: 0x<rc>`). */
export class TpmCommandError extends Error {
  readonly rc: number;
  constructor(name: string, rc: number) {
    super(`${name} failed: 0x${rc.toString(16)}`);
    this.rc = rc;
  }
}

/** Sends `cmd` and throws TpmCommandError on a non-zero result. */
export async function send(link: TpmLink, name: string, cmd: Uint8Array): Promise<Buffer> {
  const rsp = Buffer.from(await link.transmit(cmd));
  const rc = responseCode(rsp);
  if (rc !== 0) throw new TpmCommandError(name, rc);
  return rsp;
}

/** Log-line wording of what is stored, e.g. `RSA 2048 EK certificate`. */
export interface NvItem {
  readonly index: number;
  /** `RSA 2048 EK certificate`, `platform certificate`, `ECC EK template`, … */
  readonly description: string;
  /** `EK certificate`, `platform certificate` or `EK template` in error lines. */
  readonly what: string;
}

/**
 * Defines `item.index` with exactly `data.length` bytes, writes `data`, locks it with
 * `lock`. Errors: the command's line, then swtpm_setup's summary line.
 */
export async function writeNvArea(
  link: TpmLink,
  item: NvItem,
  data: Uint8Array,
  lock: boolean,
  log: (line: string) => void,
  logError: (line: string) => void,
): Promise<void> {
  const hex = item.index.toString(16);
  const step = async (summary: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      logError((err as Error).message);
      throw new Error(summary);
    }
  };
  await step(`Could not create NVRAM area 0x${hex} for ${item.what}.`, () =>
    send(link, 'TPM2_NV_DefineSpace', nvDefineSpace(item.index, SETUP_NV_ATTRIBUTES, data.length)),
  );
  await step(`Could not write ${item.what} into NVRAM area 0x${hex}.`, async () => {
    for (let off = 0; off < data.length; off += NV_WRITE_CHUNK) {
      const chunk = data.subarray(off, Math.min(off + NV_WRITE_CHUNK, data.length));
      await send(link, 'TPM2_NV_Write', nvWrite(item.index, chunk, off));
    }
  });
  if (lock) {
    await step(`Could not lock ${item.what} NVRAM area 0x${hex}.`, () =>
      send(link, 'TPM2_NV_WriteLock', nvWriteLock(item.index)),
    );
  }
  log(`Successfully created NVRAM area 0x${hex} for ${item.description}.`);
}
