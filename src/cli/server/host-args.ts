import type { SeccompAction } from '../../sandbox/seccomp.js';
/**
 * The command line of `tswtpm host` (not a swtpm interface; docs/compat.md):
 *   tswtpm host --dir BASE [--log ...] [--vtpm-log level=N] [--seccomp action=...]
 * `--log` and `--seccomp` take swtpm's sub-options; `--vtpm-log` sets the level of each
 * vTPM's own log file, BASE/NAME/tswtpm.log (an `add` request may override it).
 */
import { CliError, parseSubopts } from '../common/subopts.js';
import { seccompAction } from './sandbox-setup.js';

export interface HostConfig {
  readonly help: boolean;
  readonly dir: string;
  /** The host's own log (`--log` as swtpm takes it); undefined: errors on stderr. */
  readonly log: Record<string, string | number | boolean> | undefined;
  /** Default level of every vTPM's log file; 0: no file. */
  readonly vtpmLogLevel: number;
  readonly seccomp: SeccompAction;
}

const LOG_SPEC = {
  file: 'string',
  fd: 'int',
  level: 'int',
  prefix: 'string',
  truncate: 'bool',
} as const;

/** Default level of a vTPM's log file: errors only (swtpm's --log default). */
export const VTPM_LOG_LEVEL = 1;

/** Parses the arguments after `host`. */
export function parseHostArgs(argv: readonly string[]): HostConfig {
  let dir: string | undefined;
  let log: HostConfig['log'];
  let vtpmLogLevel = VTPM_LOG_LEVEL;
  let seccomp: string | undefined;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = () => {
      const v = name === a ? argv[++i] : a.slice(eq + 1);
      if (v === undefined) throw new CliError(`tswtpm host: option '${name}' requires an argument`);
      return v;
    };
    if (a === '-h' || a === '--help') help = true;
    else if (name === '--dir') dir = value();
    else if (name === '--log') log = parseSubopts('logging', value(), LOG_SPEC);
    else if (name === '--vtpm-log') vtpmLogLevel = logLevel(value());
    else if (name === '--seccomp') seccomp = value();
    else throw new CliError(`tswtpm host: unrecognized option '${a}' (see tswtpm host --help)`);
  }
  if (help) return { help, dir: '', log, vtpmLogLevel, seccomp: 'none' };
  if (dir === undefined) throw new CliError('tswtpm host: --dir BASE is required');
  return { help, dir, log, vtpmLogLevel, seccomp: seccompAction(seccomp) };
}

function logLevel(raw: string): number {
  const o = parseSubopts('vtpm-log', raw, { level: 'int' });
  const level = o.level;
  if (typeof level !== 'number' || level < 0) {
    throw new CliError('tswtpm host: --vtpm-log needs level=N with N >= 0');
  }
  return level;
}
