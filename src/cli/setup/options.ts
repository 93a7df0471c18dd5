/**
 * swtpm_setup 0.10's command line (provisioning.md §1.2): long options only plus
 * `-h`/`-?`; later values replace earlier ones except `--pcr-banks` (joined with `,`).
 */
import { type OptDef, getopt } from '../common/getopt.js';
import { CliError } from '../common/subopts.js';

const FLAGS = [
  'tpm2',
  'createek',
  'create-ek-cert',
  'create-platform-cert',
  'take-ownership',
  'owner-well-known',
  'srk-well-known',
  'lock-nvram',
  'create-spk',
  'ecc',
  'allow-signing',
  'decryption',
  'display',
  'overwrite',
  'not-overwrite',
  'print-capabilities',
  'reconfigure',
  'print-profiles',
  'version',
  'help',
] as const;

const VALUES = [
  'runas',
  'tpm-state',
  'tpmstate',
  'tpm',
  'swtpm_ioctl',
  'ownerpass',
  'srkpass',
  'config',
  'logfile',
  'keyfile',
  'keyfile-fd',
  'pwdfile',
  'pwdfile-fd',
  'cipher',
  'vmid',
  'pcr-banks',
  'rsa-keysize',
  'write-ek-cert-files',
  'tcsd-system-ps-file',
  'profile',
  'profile-name',
  'profile-file',
  'profile-file-fd',
  'profile-remove-disabled',
] as const;

export type Flag = (typeof FLAGS)[number];
export type ValueOpt = (typeof VALUES)[number];

export const SETUP_OPTS: readonly OptDef[] = [
  ...FLAGS.map((long) => ({ long, arg: false, ...(long === 'help' ? { short: 'h' } : {}) })),
  { long: 'help', short: '?', arg: false },
  ...VALUES.map((long) => ({ long, arg: true })),
  { long: 'create-config-files', arg: false },
];

export interface SetupArgs {
  readonly flags: ReadonlySet<Flag>;
  readonly values: ReadonlyMap<ValueOpt, string>;
  /** All `--pcr-banks` values, each trimmed, joined with `,`. */
  readonly pcrBanks: string | undefined;
  /** Lines printed while parsing (deprecated options' warnings, without newline). */
  readonly warnings: readonly string[];
  /** `--create-config-files [opts]` was met (parsing stopped there). */
  readonly createConfigFiles?: string;
}

/** Finds `--create-config-files[=opts]` and its optional next word (§1.16). */
function splitCreateConfig(argv: readonly string[]): { head: string[]; cfg?: string } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === '--create-config-files' || a.startsWith('--create-config-files=')) {
      const eq = a.indexOf('=');
      if (eq >= 0) return { head: argv.slice(0, i), cfg: a.slice(eq + 1) };
      const next = argv[i + 1];
      // swtpm_setup 0.10.2 takes the next word unless it starts with '0' (sic, §1.16).
      const cfg = next !== undefined && !next.startsWith('0') ? next : '';
      return { head: argv.slice(0, i), cfg };
    }
  }
  return { head: [...argv] };
}

const PROFILE_REMOVE = ['check', 'fips-host'];

export function parseSetupArgs(prog: string, argv: readonly string[]): SetupArgs {
  const { head, cfg } = splitCreateConfig(argv);
  const parsed = getopt(prog, head, SETUP_OPTS);
  // Non-option words are ignored, as by swtpm_setup (getopt permutes them to the end).
  const flags = new Set<Flag>();
  const values = new Map<ValueOpt, string>();
  const warnings: string[] = [];
  let banks: string | undefined;
  for (const { name, value } of parsed.opts) {
    if (value === undefined) {
      flags.add(name as Flag);
      continue;
    }
    const v = name === 'tpmstate' ? 'tpm-state' : (name as ValueOpt);
    if (v === 'pcr-banks') {
      banks = banks === undefined ? value.trim() : `${banks},${value.trim()}`;
      continue;
    }
    if (v === 'swtpm_ioctl' || v === 'tcsd-system-ps-file') {
      warnings.push(`Warning: --${v} is deprecated and has no effect.`);
      continue;
    }
    if (v === 'keyfile-fd' || v === 'pwdfile-fd' || v === 'profile-file-fd') {
      if (!/^\d+$/.test(value)) throw new CliError(`Invalid file descriptor '${value}'`);
    }
    if (v === 'profile-remove-disabled' && !PROFILE_REMOVE.includes(value)) {
      throw new CliError(`Unsupported parameter for --profile-remove-disabled: ${value}`);
    }
    values.set(v, value);
  }
  return {
    flags,
    values,
    pcrBanks: banks,
    warnings,
    ...(cfg !== undefined ? { createConfigFiles: cfg } : {}),
  };
}
