/**
 * `--print-capabilities` of swtpm_setup 0.10 (provisioning.md §1.4), built from the
 * emulator's own `--print-capabilities` (plain and `--tpm2`).
 */
import type { Emulator } from '../../provision/emulator.js';
import { SETUP_VERSION } from './usage.js';

/** The `rsa-keysize-N` values (N >= 2048) in the emulator's order. */
export function rsaKeySizes(tpm2Caps: string): number[] {
  const out: number[] = [];
  for (const m of tpm2Caps.matchAll(/"rsa-keysize-(\d+)"/g)) {
    const n = Number(m[1]);
    if (n >= 2048) out.push(n);
  }
  return out;
}

/** `profiles.names` of swtpm 0.10's TPM 2 capabilities, or undefined if it has none. */
export function profileNames(tpm2Caps: string): string[] | undefined {
  try {
    const j = JSON.parse(tpm2Caps) as { profiles?: { names?: unknown } };
    if (j.profiles === undefined) return undefined;
    return Array.isArray(j.profiles.names) ? j.profiles.names.map(String) : [];
  } catch {
    return undefined;
  }
}

/**
 * The JSON line (without newline). An emulator without profile support (libtpms < 0.10)
 * makes swtpm_setup 0.10.2 fail; we then leave out the profile features and the
 * `profiles` member instead (docs/compat.md).
 */
export async function setupCapabilities(emu: Emulator, logfile?: string): Promise<string> {
  const plain = await emu.capabilities(false, logfile);
  const tpm2 = await emu.capabilities(true, logfile);
  const f: string[] = [];
  if (plain.includes('"tpm-1.2"')) f.push('tpm-1.2');
  if (plain.includes('"tpm-2.0"')) f.push('tpm-2.0');
  f.push(
    'cmdarg-keyfile-fd',
    'cmdarg-pwdfile-fd',
    'tpm12-not-need-root',
    'cmdarg-write-ek-cert-files',
    'cmdarg-create-config-files',
    'cmdarg-reconfigure-pcr-banks',
  );
  for (const n of rsaKeySizes(tpm2)) f.push(`tpm2-rsa-keysize-${n}`);
  const names = profileNames(tpm2);
  if (names !== undefined) f.push('cmdarg-profile', 'cmdarg-profile-remove-disabled');
  const list = f.map((x) => `"${x}"`).join(', ');
  const prof =
    names === undefined ? '' : ` "profiles": [ ${names.map((n) => `"${n}"`).join(', ')} ],`;
  return `{ "type": "swtpm_setup", "features": [ ${list} ],${prof} "version": "${SETUP_VERSION}" }`;
}
