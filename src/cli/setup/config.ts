/**
 * swtpm_setup.conf (provisioning.md §3.1): where it is searched, and its `key = value`
 * lines (key at column 0, value up to `#`, trailing whitespace dropped, `${VAR}`
 * expanded from the environment, first match wins).
 */
import { constants, accessSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const SYSCONF_SETUP_CONF = '/etc/swtpm_setup.conf';

/** GLib's user config dir: $XDG_CONFIG_HOME, else $HOME/.config (only one is tried). */
export function userConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg !== undefined && xdg !== '') return xdg;
  return join(env.HOME ?? '', '.config');
}

const readable = (f: string): boolean => {
  try {
    accessSync(f, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

/** `<user config dir>/swtpm_setup.conf` if readable, else `/etc/swtpm_setup.conf`. */
export function defaultConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  const user = join(userConfigDir(env), 'swtpm_setup.conf');
  return readable(user) ? user : SYSCONF_SETUP_CONF;
}

/** Replaces every `${NAME}` by the environment's value (empty if unset). */
export function expandVars(value: string, env: NodeJS.ProcessEnv = process.env): string {
  return value.replace(/\$\{([^}]*)\}/g, (_m, name: string) => env[name] ?? '');
}

/** The value of `key` in the config text, or undefined. */
export function configValue(
  text: string,
  key: string,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(key)) continue;
    const m = /^[ \t]*=[ \t]*([^#]*)/.exec(line.slice(key.length));
    if (m === null) continue;
    return expandVars(m[1]!.replace(/\s+$/, ''), env);
  }
  return undefined;
}

/** The keys swtpm_setup reads. */
export interface SetupConfig {
  readonly createCertsTool?: string;
  readonly createCertsToolConfig?: string;
  readonly createCertsToolOptions?: string;
  readonly activePcrBanks?: string;
  readonly rsaKeysize?: string;
  readonly profile?: string;
  readonly profileFile?: string;
  readonly localProfilesDir?: string;
}

export function parseSetupConfig(text: string, env: NodeJS.ProcessEnv = process.env): SetupConfig {
  const out: Record<string, string> = {};
  const keys: Array<[keyof SetupConfig, string]> = [
    ['createCertsTool', 'create_certs_tool'],
    ['createCertsToolConfig', 'create_certs_tool_config'],
    ['createCertsToolOptions', 'create_certs_tool_options'],
    ['activePcrBanks', 'active_pcr_banks'],
    ['rsaKeysize', 'rsa_keysize'],
    ['profile', 'profile'],
    ['profileFile', 'profile_file'],
    ['localProfilesDir', 'local_profiles_dir'],
  ];
  for (const [field, key] of keys) {
    // `create_certs_tool` is a prefix of `create_certs_tool_config`: the `=` must follow.
    const v = configValue(text, key, env);
    if (v !== undefined) out[field] = v;
  }
  return out as SetupConfig;
}

/** Reads the config file; undefined if it cannot be read. */
export function readSetupConfig(file: string): SetupConfig | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  return parseSetupConfig(text);
}
