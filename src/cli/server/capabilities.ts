import { Engine } from '../../engine/engine.js';
import type { Config } from './args.js';
import { seccompSupported } from './sandbox-setup.js';

/**
 * `--print-capabilities`: swtpm's JSON, in its exact spacing. Features are listed in
 * swtpm's order; only what tswtpm implements is claimed (`cmdarg-seccomp` only where
 * libseccomp loads). `version` is the swtpm release whose behaviour we follow,
 * because libvirt compares it (docs/compat.md).
 */
export function printCapabilities(cfg: Config): string {
  const f: string[] = ['tpm-1.2', 'tpm-2.0'];
  if (cfg.iface !== 'cuse') f.push('tpm-send-command-header');
  f.push('flags-opt-startup', 'flags-opt-disable-auto-shutdown', 'ctrl-opt-terminate');
  if (seccompSupported()) f.push('cmdarg-seccomp');
  f.push(
    'cmdarg-key-fd',
    'cmdarg-pwd-fd',
    'cmdarg-print-states',
    'cmdarg-chroot',
    'cmdarg-migration',
    'nvram-backend-dir',
    'nvram-backend-file',
  );
  const engine = openEngine();
  if (cfg.tpm2) {
    for (const size of rsaKeySizes(engine)) f.push(`rsa-keysize-${size}`);
  }
  // Profiles need libtpms 0.10 (TPMLIB_SetProfile); remove-disabled is not implemented.
  const profiles = engine?.setProfile !== undefined;
  if (cfg.tpm2 && profiles) f.push('cmdarg-profile', 'cmdarg-print-profiles');
  f.push(
    'cmdarg-print-info',
    'tpmstate-opt-lock',
    'tpmstate-dir-backend-opt-backup',
    'tpmstate-dir-backend-opt-fsync',
    'cmdarg-pcap',
  );
  const list = f.map((x) => `"${x}"`).join(', ');
  const prof = profiles && engine ? ` "profiles": { ${profileCaps(engine, cfg.tpm2)}},` : '';
  engine?.close();
  return `{ "type": "swtpm", "features": [ ${list} ],${prof} "version": "0.10.0" }`;
}

/** An engine to ask about the loaded libtpms; undefined when it cannot be loaded. */
function openEngine(): Engine | undefined {
  try {
    return Engine.open();
  } catch {
    return undefined;
  }
}

interface ProfileInfo {
  AvailableProfiles?: Array<{ Name?: string }>;
  RuntimeAlgorithms?: { CanBeDisabled?: string; Implemented?: string };
  RuntimeCommands?: { CanBeDisabled?: string; Implemented?: string };
}

/**
 * swtpm 0.10's `"profiles"` object (libtpms 0.10, TPM 2): the profile names and the
 * algorithms and commands that can be disabled / are implemented; empty for TPM 1.2.
 */
function profileCaps(engine: Engine, tpm2: boolean): string {
  if (!tpm2) return '';
  let info: ProfileInfo = {};
  try {
    engine.choose('2.0');
    // AVAILABLE_PROFILES | RUNTIME_ALGORITHMS | RUNTIME_COMMANDS
    info = JSON.parse(engine.getInfo(0x40n | 0x08n | 0x10n) ?? '{}') as ProfileInfo;
  } catch {}
  const names = (info.AvailableProfiles ?? []).map((p) => `"${p.Name ?? ''}"`).join(', ');
  const part = (o: ProfileInfo['RuntimeAlgorithms']) =>
    `{ "canbedisabled": "${o?.CanBeDisabled ?? ''}", "implemented": "${o?.Implemented ?? ''}" }`;
  return `"names": [ ${names} ], "algorithms": ${part(info.RuntimeAlgorithms)}, "commands": ${part(info.RuntimeCommands)} `;
}

function rsaKeySizes(engine: Engine | undefined): number[] {
  try {
    if (engine === undefined) return [];
    engine.choose('2.0');
    const text = engine.getInfo(4n);
    const info = JSON.parse(text ?? '{}') as { TPMFeatures?: { RSAKeySizes?: number[] } };
    return info.TPMFeatures?.RSAKeySizes ?? [];
  } catch {
    return [];
  }
}
