/**
 * `--pcr-banks` on a TPM 2 (provisioning.md §1.10): GetCapability(TPM_CAP_PCRS) lists
 * the implemented banks; the requested ones are selected in the user's order, every
 * other bank is deselected, in one PCR_Allocate that takes effect at the next Startup.
 */
import type { TpmLink } from './link.js';
import { TpmResponseError, getCapabilityPcrs, pcrAllocate } from './tpm2-cmds.js';
import { send } from './tpm2-nv.js';

/** Bank names swtpm_setup knows, by TPM_ALG_ID. */
export const PCR_BANK_NAMES: ReadonlyMap<number, string> = new Map([
  [0x0004, 'sha1'],
  [0x000b, 'sha256'],
  [0x000c, 'sha384'],
  [0x000d, 'sha512'],
  [0x0012, 'sm3-256'],
  [0x0027, 'sha3-256'],
  [0x0028, 'sha3-384'],
  [0x0029, 'sha3-512'],
]);

const MAX_BANKS = 20;

/** The implemented banks' algorithm ids, from a GetCapability(TPM_CAP_PCRS) response. */
export function parsePcrBanks(rsp: Buffer): number[] {
  // swtpm_setup reads the low half of the TPML count (bytes 17-18), entries from 19.
  if (rsp.length < 19) throw new TpmResponseError('TPM2_GetCapability: response too short');
  const count = rsp.readUInt16BE(17);
  if (count > MAX_BANKS)
    throw new TpmResponseError(`TPM2_GetCapability: too many PCR banks (${count})`);
  const algs: number[] = [];
  let off = 19;
  for (let i = 0; i < count; i++) {
    if (off + 3 > rsp.length) throw new TpmResponseError('TPM2_GetCapability: truncated response');
    algs.push(rsp.readUInt16BE(off));
    off += 3 + rsp.readUInt8(off + 2);
  }
  return algs;
}

/** A bank's name in logs: its known name or its id as `%02x`. */
export const bankName = (alg: number): string =>
  PCR_BANK_NAMES.get(alg) ?? alg.toString(16).padStart(2, '0');

/**
 * Activates the banks named in `banks` (comma-separated; items not trimmed, unknown
 * names ignored) and logs `Successfully activated PCR banks … among ….`.
 */
export async function activatePcrBanks(
  link: TpmLink,
  banks: string,
  log: (line: string) => void,
): Promise<void> {
  const all = parsePcrBanks(await send(link, 'TPM2_GetCapability', getCapabilityPcrs()));
  const chosen: number[] = [];
  for (const name of banks.split(',')) {
    const alg = all.find((a) => PCR_BANK_NAMES.get(a) === name);
    if (alg !== undefined && !chosen.includes(alg)) chosen.push(alg);
  }
  if (chosen.length === 0) {
    throw new Error(
      'No PCR banks could be allocated. None of the selected algorithms are supported.',
    );
  }
  const others = all.filter((a) => !chosen.includes(a));
  await send(
    link,
    'TPM2_PCR_Allocate',
    pcrAllocate([
      ...chosen.map((alg) => ({ alg, on: true })),
      // An unknown algorithm is deselected with hashAlg 0, as swtpm_setup does.
      ...others.map((alg) => ({ alg: PCR_BANK_NAMES.has(alg) ? alg : 0, on: false })),
    ]),
  );
  log(
    `Successfully activated PCR banks ${chosen.map(bankName).join(',')} among ${all.map(bankName).join(',')}.`,
  );
}
