import type { StateName, TpmVersion } from '../engine/types.js';

/** The three state names, in the order swtpm lists them (and linear-file entries 0..2). */
export const STATE_NAMES: readonly StateName[] = ['permall', 'volatilestate', 'savestate'];

/**
 * swtpm's file name for a state blob ("00" is the TPM number, always 0).
 *
 * @example stateFileName('2.0', 'permall') // 'tpm2-00.permall'
 */
export function stateFileName(version: TpmVersion, name: StateName): string {
  return `${version === '2.0' ? 'tpm2' : 'tpm'}-00.${name}`;
}

/** Temporary file written before the atomic rename: `TMP2-00.permall`. */
export function tempFileName(version: TpmVersion, name: StateName): string {
  return `${version === '2.0' ? 'TMP2' : 'TMP'}-00.${name}`;
}
