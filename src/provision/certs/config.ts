/**
 * swtpm-localca.conf and swtpm-localca.options (provisioning.md §3.1, §4.2, §4.3).
 *
 * A key matches only at column 0: `^<key>[ \t]*=[ \t]*<value>`; the value stops at the
 * first `#`, trailing whitespace is dropped, then every `${NAME}` becomes the environment
 * variable (empty when unset; an unterminated `${` stays). The first matching line wins.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where swtpm_localca looks when `--configfile`/`--optsfile` are not given. */
export const SYSCONFDIR = '/etc';

/** `${NAME}` expansion of swtpm 0.10 (0.7.1 used values literally; no shipped config has any). */
export function expandEnv(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/\$\{([^}]*)\}/g, (_m, name: string) => env[name] ?? '');
}

/** Lines of a config file, split on `\n`, empty lines dropped. */
export type ConfigLines = readonly string[];

export const configLines = (text: string): ConfigLines => text.split('\n').filter((l) => l !== '');

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The value of `key`, or `fallback` when no line sets it. */
export function configValue(
  lines: ConfigLines,
  key: string,
  env: NodeJS.ProcessEnv,
  fallback?: string,
): string | undefined {
  const re = new RegExp(`^${escapeRe(key)}[ \\t]*=[ \\t]*([^#]*)`);
  for (const line of lines) {
    const m = re.exec(line);
    if (m !== null) return expandEnv(m[1]!.replace(/\s+$/, ''), env);
  }
  return fallback;
}

/** `env:<NAME> = <value>` lines (used by swtpm_localca for pkcs11: keys only). */
export function configEnvLines(lines: ConfigLines): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of lines) {
    const m = /^env:([A-Za-z_][A-Za-z_0-9]*)\s*=\s*(.*)/.exec(line);
    if (m !== null) out.push([m[1]!, m[2]!]);
  }
  return out;
}

/**
 * swtpm-localca.options: every line split on single spaces, empty pieces dropped; each piece
 * is one swtpm_cert argv word (so values cannot contain spaces, as in swtpm_localca).
 */
export function optionWords(text: string): string[] {
  return text
    .split('\n')
    .flatMap((l) => l.split(' '))
    .filter((w) => w !== '');
}

/** GLib's user config dir: `$XDG_CONFIG_HOME`, else `$HOME/.config`. */
export function userConfigDir(env: NodeJS.ProcessEnv): string {
  const x = env.XDG_CONFIG_HOME;
  if (x !== undefined && x !== '') return x;
  return join(env.HOME ?? homedir(), '.config');
}
