/**
 * tswtpm_localca: a drop-in for swtpm_localca's create_certs_tool plug-in interface
 * (provisioning.md §3.2, §4). Same options, config files, CA directory, log lines, output
 * files (`ek.cert`, `platform.cert`; TPM 1.2 with the 7-byte NV header) and exit codes
 * (0 success, 1 any error). The certificate is made in process instead of by swtpm_cert,
 * and a missing CA is created without certtool (docs/compat.md).
 */
import { constants, closeSync, openSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type LocalCaRequest, issueLocalCaCert } from '../../provision/certs/issue.js';
import { errorText } from '../../provision/certs/libc.js';
import { LocalCaError } from '../../provision/certs/localca.js';
import { type OptDef, getopt } from '../common/getopt.js';
import { CliError } from '../common/subopts.js';
import { usage } from './usage.js';

const OPTS: readonly OptDef[] = [
  { long: 'type', arg: true },
  { long: 'ek', arg: true },
  { long: 'key', arg: true },
  { long: 'dir', arg: true },
  { long: 'vmid', arg: true },
  { long: 'optsfile', arg: true },
  { long: 'configfile', arg: true },
  { long: 'logfile', arg: true },
  { long: 'tpm-spec-family', arg: true },
  { long: 'tpm-spec-level', arg: true },
  { long: 'tpm-spec-revision', arg: true },
  { long: 'tpm-manufacturer', arg: true },
  { long: 'tpm-model', arg: true },
  { long: 'tpm-version', arg: true },
  { long: 'tpm2', arg: false },
  { long: 'allow-signing', arg: false },
  { long: 'decryption', arg: false },
  { long: 'help', short: 'h', arg: false },
  // `-?` is in swtpm_localca's optstring, where getopt's error value also lands: usage, exit 1.
  { long: '\u0000?', short: '?', arg: false },
];

/** swtpm_localca's logger: to the log file if given, else info on stdout, errors on stderr. */
interface Logger {
  info(line: string): void;
  error(text: string): void;
}

function logger(logfile: string | undefined): Logger {
  if (logfile === undefined)
    return {
      info: (l) => process.stdout.write(`${l}\n`),
      error: (t) => process.stderr.write(`${t}\n`),
    };
  const append = (text: string) => {
    try {
      const fd = openSync(
        logfile,
        constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
        0o644,
      );
      try {
        writeSync(fd, text);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      process.stderr.write(`Error opening file ${logfile}: ${errorText(e)}\n`);
    }
  };
  return { info: (l) => append(`${l}\n`), error: (t) => append(`${t}\n`) };
}

function request(opts: Array<{ name: string; value: string | undefined }>): {
  req: LocalCaRequest;
  dir: string;
  logfile: string | undefined;
  /** true: `--help` (exit 0); false: `-?` (exit 1). */
  help: boolean | undefined;
} {
  const v: Record<string, string> = {};
  const flags = new Set<string>();
  for (const o of opts) {
    if (o.value === undefined) flags.add(o.name);
    else v[o.name === 'key' ? 'ek' : o.name] = o.value;
  }
  const opt = <K extends string>(k: string, as: K) =>
    (v[k] !== undefined ? { [as]: v[k] } : {}) as Partial<Record<K, string>>;
  const req: LocalCaRequest = {
    type: v.type ?? '',
    ekParam: v.ek ?? '',
    tpm2: flags.has('tpm2'),
    allowSigning: flags.has('allow-signing'),
    decryption: flags.has('decryption'),
    ...opt('vmid', 'vmid'),
    ...opt('tpm-spec-family', 'specFamily'),
    ...opt('tpm-spec-level', 'specLevel'),
    ...opt('tpm-spec-revision', 'specRevision'),
    ...opt('tpm-manufacturer', 'tpmManufacturer'),
    ...opt('tpm-model', 'tpmModel'),
    ...opt('tpm-version', 'tpmVersion'),
    ...opt('configfile', 'configFile'),
    ...opt('optsfile', 'optsFile'),
  };
  const help = flags.has('\u0000?') ? false : flags.has('help') ? true : undefined;
  return { req, dir: v.dir ?? '.', logfile: v.logfile, help };
}

/** Writes the certificate as swtpm_cert does: O_TRUNC|O_NOFOLLOW, mode 0600. */
function writeCert(path: string, bytes: Uint8Array): void {
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
      0o600,
    );
  } catch (e) {
    throw new Error(`Could not open ${path} for writing the certificate: ${errorText(e)}`);
  }
  try {
    writeSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}

async function run(argv: string[], prog: string): Promise<number> {
  let parsed: ReturnType<typeof request>;
  try {
    parsed = request(getopt(prog, argv, OPTS).opts);
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    // glibc's message on stderr, the usage on stdout (swtpm_localca 0.7.1 crashes on an
    // unknown long option instead; docs/compat.md).
    process.stderr.write(`${e.message}\n`);
    process.stdout.write(usage(prog));
    return 1;
  }
  if (parsed.help !== undefined) {
    process.stdout.write(usage(prog));
    return parsed.help ? 0 : 1;
  }
  const log = logger(parsed.logfile);
  try {
    const cert = await issueLocalCaCert(parsed.req, process.env, log.info);
    const file = join(parsed.dir, cert.file);
    try {
      writeCert(file, cert.bytes);
    } catch (e) {
      throw new LocalCaError(
        `Could not create ${cert.what} certificate locally\n${(e as Error).message}\n`,
      );
    }
    log.info(`Successfully created ${cert.what} certificate locally.`);
    return 0;
  } catch (e) {
    log.error(e instanceof LocalCaError ? e.message : String((e as Error).message ?? e));
    return 1;
  }
}

/** Entry point of `bin/tswtpm_localca.js`. */
export function main(argv: string[]): void {
  const prog = basename(process.argv[1] ?? 'swtpm_localca').replace(/\.js$/, '');
  run(argv, prog).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${prog}: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
