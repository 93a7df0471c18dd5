/**
 * `--create-config-files [overwrite][,root][,skip-if-exist]` (provisioning.md §1.16):
 * per-user swtpm_setup.conf, swtpm-localca.conf and swtpm-localca.options.
 */
import { existsSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { type as osType, version as osVersion } from 'node:os';
import { join } from 'node:path';
import { CliError } from '../common/subopts.js';
import { userConfigDir } from './config.js';
import { DEFAULT_PCR_BANKS } from './usage.js';

export interface ConfigFilesOptions {
  /** The create_certs_tool written into swtpm_setup.conf. */
  readonly certsTool: string;
  /** Write the 0.10 profile lines (only when the emulator has profiles). */
  readonly profiles: boolean;
  readonly out: (line: string) => void;
}

/** uname(2)'s sysname and version. */
function unameFields(): { sysname: string; version: string } {
  return { sysname: osType(), version: osVersion() };
}

/** Returns the exit code. */
export function createConfigFiles(spec: string, o: ConfigFilesOptions): number {
  const toks = spec.split(/[, ]/).filter((t) => t !== '');
  const overwrite = toks.includes('overwrite');
  const root = toks.includes('root');
  const skip = toks.includes('skip-if-exist');
  if (overwrite && skip)
    throw new CliError('Error: overwrite and skip-if-exist cannot both be used');
  if (process.getuid?.() === 0 && !root) {
    throw new CliError(
      "Requiring the 'root' flag since the configuration files will shadow those in /etc.",
    );
  }
  const cfg = userConfigDir();
  const files = ['swtpm_setup.conf', 'swtpm-localca.conf', 'swtpm-localca.options'].map((f) =>
    join(cfg, f),
  );
  if (!overwrite) {
    const found = files.find((f) => existsSync(f));
    if (found !== undefined) {
      if (skip) return 0;
      throw new CliError(`File ${found} already exists. Refusing to overwrite.`);
    }
  }
  const ca = join(cfg, 'var', 'lib', 'swtpm-localca');
  mkdirSync(ca, { recursive: true, mode: 0o775 });
  const u = unameFields();
  const clean = (s: string) => s.replace(/ /g, '_');
  const profileLines = o.profiles
    ? `profile = {"Name":"default-v1"}\n# profile_file =\nlocal_profiles_dir = ${join(cfg, 'etc', 'swtpm', 'profiles')}/\n`
    : '';
  const contents = [
    `create_certs_tool = ${o.certsTool}\ncreate_certs_tool_config = ${files[1]}\ncreate_certs_tool_options = ${files[2]}\n# Comma-separated list (no spaces) of PCR banks to activate by default\nactive_pcr_banks = ${DEFAULT_PCR_BANKS}\n${profileLines}`,
    `statedir = ${ca}\nsigningkey = ${join(ca, 'signkey.pem')}\nissuercert = ${join(ca, 'issuercert.pem')}\ncertserial = ${join(ca, 'certserial')}\n`,
    `--platform-manufacturer ${clean(u.sysname)}\n--platform-version ${clean(u.version)}\n--platform-model ${clean(u.sysname)}\n`,
  ];
  try {
    files.forEach((f, i) => {
      o.out(`Writing ${f}.`);
      writeFileSync(f, contents[i]!, { mode: 0o666 });
    });
  } catch (err) {
    for (const f of files) {
      try {
        unlinkSync(f);
      } catch {}
    }
    throw new CliError(`Could not write config files: ${(err as Error).message}`);
  }
  return 0;
}
