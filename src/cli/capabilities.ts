import { Engine } from '../engine/engine.js';
import type { Config } from './args.js';

/**
 * `--print-capabilities`: swtpm's JSON, in its exact spacing. Features are listed in
 * swtpm's order; only what tswtpm implements is claimed. `version` is the swtpm
 * release whose behaviour we follow, because libvirt compares it (docs/compat.md).
 */
export function printCapabilities(cfg: Config): string {
  const f: string[] = ['tpm-1.2', 'tpm-2.0'];
  if (cfg.iface !== 'cuse') f.push('tpm-send-command-header');
  f.push(
    'flags-opt-startup',
    'flags-opt-disable-auto-shutdown',
    'ctrl-opt-terminate',
    'cmdarg-key-fd',
    'cmdarg-pwd-fd',
    'cmdarg-print-states',
    'cmdarg-migration',
    'nvram-backend-dir',
    'nvram-backend-file',
  );
  if (cfg.tpm2) {
    for (const size of rsaKeySizes()) f.push(`rsa-keysize-${size}`);
  }
  f.push('tpmstate-opt-lock', 'tpmstate-dir-backend-opt-backup', 'tpmstate-dir-backend-opt-fsync');
  const list = f.map((x) => `"${x}"`).join(', ');
  return `{ "type": "swtpm", "features": [ ${list} ], "version": "0.10.0" }`;
}

function rsaKeySizes(): number[] {
  try {
    const engine = Engine.get();
    engine.choose('2.0');
    const text = engine.getInfo(4n);
    const info = JSON.parse(text ?? '{}') as { TPMFeatures?: { RSAKeySizes?: number[] } };
    return info.TPMFeatures?.RSAKeySizes ?? [];
  } catch {
    return [];
  }
}
