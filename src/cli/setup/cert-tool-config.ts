/**
 * Which create_certs_tool a run uses (provisioning.md §3.1/§3.2): the config file's
 * `create_certs_tool` (a path, or a name looked up in PATH). With no config file at all
 * (a host without C swtpm has no /etc/swtpm_setup.conf) tswtpm_setup falls back to its
 * sibling program tswtpm_localca with swtpm_localca's default config paths, and says so
 * in the log (docs/compat.md). Where those default files do not exist either, it hands
 * tswtpm_localca the contents swtpm ships (/etc/swtpm-localca.conf and .options; for
 * another user than root the CA lives under the user's config dir, as
 * `--create-config-files` puts it), written into the run's private certificate directory.
 */
import { constants, accessSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CertTool, certToolMaker } from '../../provision/cert-tool.js';
import { defaultConfigFile } from '../../provision/certs/issue.js';
import type { CertMaker } from '../../provision/link.js';
import { type SetupConfig, userConfigDir } from './config.js';

export const LOCALCA_BIN = fileURLToPath(
  new URL('../../../../bin/tswtpm_localca.js', import.meta.url),
);

const executable = (p: string): boolean => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** A program name resolved as g_find_program_in_path does (a path is taken as is). */
export function findInPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes('/')) return executable(name) ? name : undefined;
  for (const d of (env.PATH ?? '').split(delimiter)) {
    if (d === '') continue;
    const p = join(d, name);
    if (executable(p)) return p;
  }
  return undefined;
}

/** swtpm's shipped swtpm-localca.options (provisioning.md §4.3). */
const DEFAULT_LOCALCA_OPTIONS =
  '--platform-manufacturer Fedora\n--platform-version 2.1\n--platform-model QEMU\n';

/**
 * For each of swtpm-localca.conf and .options that exists in neither the user's config dir
 * nor /etc, a file with swtpm's shipped contents in `dir`, passed as --configfile/--optsfile.
 */
function builtInLocalCaFiles(dir: string): { configfile?: string; optsfile?: string } {
  const out: { configfile?: string; optsfile?: string } = {};
  if (!existsSync(defaultConfigFile('swtpm-localca.conf', process.env))) {
    const ca =
      process.getuid?.() === 0
        ? '/var/lib/swtpm-localca'
        : join(userConfigDir(), 'var', 'lib', 'swtpm-localca');
    out.configfile = join(dir, 'swtpm-localca.conf');
    writeFileSync(
      out.configfile,
      `statedir = ${ca}\nsigningkey = ${join(ca, 'signkey.pem')}\nissuercert = ${join(ca, 'issuercert.pem')}\ncertserial = ${join(ca, 'certserial')}\n`,
      { mode: 0o600 },
    );
  }
  if (!existsSync(defaultConfigFile('swtpm-localca.options', process.env))) {
    out.optsfile = join(dir, 'swtpm-localca.options');
    writeFileSync(out.optsfile, DEFAULT_LOCALCA_OPTIONS, { mode: 0o600 });
  }
  return out;
}

/** The private certificate directory, made on first use and removed by `remove()`. */
export class CertDir {
  private dir: string | undefined;
  get = (): string => {
    this.dir ??= mkdtempSync(join(tmpdir(), 'swtpm_setup.certs.'));
    return this.dir;
  };
  remove(): void {
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The CertMaker of a run. `config` undefined = no config file exists at all (fallback).
 * A config without `create_certs_tool` makes no certificates, and, as in swtpm_setup,
 * the missing output file is then the error.
 */
export function makeCertMaker(
  config: SetupConfig | undefined,
  dir: CertDir,
  logfile: string | undefined,
  log: (line: string) => void,
): CertMaker {
  const withLog = logfile !== undefined ? { logfile } : {};
  if (config === undefined) {
    let told = false;
    return async (req) => {
      if (!existsSync(LOCALCA_BIN)) throw new Error(`Could not find ${LOCALCA_BIN}.`);
      if (!told) log(`  Using ${LOCALCA_BIN} with swtpm_localca's default configuration.`);
      told = true;
      const tool: CertTool = {
        argv: [process.execPath, LOCALCA_BIN],
        logName: 'tswtpm_localca',
        ...withLog,
        ...builtInLocalCaFiles(dir.get()),
      };
      return certToolMaker(tool, dir.get, log)(req);
    };
  }
  const name = config.createCertsTool;
  if (name === undefined || name === '') {
    return async (req) => {
      throw new Error(
        `Failed to open file “${join(dir.get(), `${req.type}.cert`)}”: No such file or directory`,
      );
    };
  }
  return async (req) => {
    const path = findInPath(name);
    if (path === undefined) throw new Error(`Could not find ${name} in PATH.`);
    const tool: CertTool = {
      argv: [path],
      logName: basename(name),
      ...withLog,
      ...(config.createCertsToolConfig !== undefined
        ? { configfile: config.createCertsToolConfig }
        : {}),
      ...(config.createCertsToolOptions !== undefined
        ? { optsfile: config.createCertsToolOptions }
        : {}),
    };
    return certToolMaker(tool, dir.get, log)(req);
  };
}
