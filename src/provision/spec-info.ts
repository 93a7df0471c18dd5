/**
 * The `CMD_GET_INFO` flags=3 answer (TPMSpecification + TPMAttributes) as swtpm_setup
 * reads it for the certificate tool (provisioning.md §3.2).
 */
import type { TpmSpecInfo } from './link.js';

/** [section, member, integer?] in swtpm_setup's argv order. */
const RULES = [
  ['TPMSpecification', 'family', false],
  ['TPMSpecification', 'level', true],
  ['TPMSpecification', 'revision', true],
  ['TPMAttributes', 'manufacturer', false],
  ['TPMAttributes', 'model', false],
  ['TPMAttributes', 'version', false],
] as const;

/**
 * Parses the JSON; a missing member throws swtpm_setup's
 * `Could not find [<section>][<member>] in '<json>'`.
 *
 * @example
 * parseSpecInfo(await link.getInfo(3)).family; // "1.2"
 */
export function parseSpecInfo(json: string): TpmSpecInfo {
  let root: Record<string, Record<string, unknown> | undefined>;
  try {
    root = JSON.parse(json) as typeof root;
  } catch (e) {
    throw new Error(`JSON parser failed: ${(e as Error).message}`);
  }
  const out: Record<string, string | number> = {};
  for (const [section, member, isInt] of RULES) {
    const v = root?.[section]?.[member];
    const ok = isInt ? typeof v === 'number' : typeof v === 'string';
    if (!ok) throw new Error(`Could not find [${section}][${member}] in '${json}'`);
    out[member] = v as string | number;
  }
  return out as unknown as TpmSpecInfo;
}
