/**
 * tswtpm_bios: a drop-in for swtpm_bios (provisioning.md §6). Same options (parsed by
 * getopt_long_only, so `-cs` is one option), the same commands over one connection per
 * command, the same messages on the same streams, and the same exit codes: 0, 128 (a TPM
 * error), 129 (`-ea`: reset needed), 255 (transport), 1 (options).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { GetoptLongOnly, type LongOpt } from '../ioctl/ioctl-getopt.js';
import { scanU32 } from '../ioctl/ioctl-scan.js';
import { type BiosIo, type BiosPlan, NO_STARTUP, tpm2Bios, tpm12Bios } from './bios-run.js';
import { chooseTarget } from './bios-talk.js';

const DEFAULT_TCP_PORT = 6545;

function ownVersion(): string {
  const url = new URL('../../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

/** swtpm_bios' help text; only the first line names tswtpm_bios (docs/compat.md). */
const usage = (prog: string) =>
  `TPM emulator BIOS emulator version ${ownVersion()} (tswtpm_bios, compatible with swtpm_bios 0.7.1)

${prog} [options]

Runs TPM_Startup (unless -n), then (unless -o) sets PP, enable, activate 
and finally (using -u) gives up physical presence (PP)

The following options are supported:
\t--tpm-device <device>  use the given device; default is /dev/tpm0
\t--tcp [<host>]:[<prt>] connect to TPM on given host and port;
\t                       default host is 127.0.0.1, default port is ${DEFAULT_TCP_PORT}
\t--unix <path>          connect to TPM using UnixIO socket
\t--tpm2                 initialize a TPM2
\t-c                     startup clear (default)
\t-s                     startup state
\t-d                     startup deactivate (no effect on TPM2)
\t-n                     no startup
\t-o                     startup only
\t-cs                    run TPM_ContinueSelfTest on TPM1.2
\t                       run TPM2_IncrementalSelfTest on TPM2
\t-ea                    make sure that the TPM 1.2 is activated;
\t                       terminate with exit code 129 if the TPM
\t                       needs to be reset
\t-u                     give up physical presence
\t                       on TPM 2 set the platform hierarchy to a
\t                       random password
\t-v                     display version and exit
\t-h                     display this help screen and exit
`;

/** swtpm_bios' long-option table, in its order (prefix matching depends on it). */
const BIOS_OPTS: readonly LongOpt[] = [
  ['tpm-device', 1, 'D'],
  ['tcp', 1, 'T'],
  ['unix', 1, 'U'],
  ['c', 0, 'c'],
  ['d', 0, 'd'],
  ['h', 0, 'h'],
  ['v', 0, 'v'],
  ['n', 0, 'n'],
  ['s', 0, 's'],
  ['o', 0, 'o'],
  ['cs', 0, 'C'],
  ['ea', 0, 'E'],
  ['u', 0, 'u'],
  ['tpm2', 0, '2'],
].map(([name, arg, val]) => ({ name: name as string, hasArg: arg === 1, val: val as string }));

/**
 * `--tcp [<host>][:<port>]` as swtpm_bios 0.7.1 splits it: at the last ':', port read
 * with %u and range-checked as an int (so negative numbers pass), host 127.0.0.1 for
 * `:port`. The range message shows the argument from its second character.
 */
export function parseBiosTcp(arg: string): { host: string; port: number } | { error: string } {
  const pos = arg.lastIndexOf(':');
  if (pos < 0) return { host: arg, port: DEFAULT_TCP_PORT };
  const portStr = arg.slice(pos + 1);
  if (pos === 0 && portStr.length === 0) return { host: '127.0.0.1', port: DEFAULT_TCP_PORT };
  const p = scanU32(portStr);
  if (p === undefined) return { error: `Invalid port '${portStr}'\n` };
  if ((p | 0) >= 65536) return { error: `Port '${arg.slice(1)}' outside valid range.\n` };
  return { host: pos === 0 ? '127.0.0.1' : arg.slice(0, pos), port: p };
}

interface Parsed {
  plan: BiosPlan;
  tpm2: boolean;
  device?: string;
  tcp?: { host: string; port: number };
  unix?: string;
}

/** Parses like swtpm_bios; a number is the exit code of an early end. */
function parse(argv: readonly string[], prog: string, io: BiosIo): Parsed | number {
  const args = [prog, ...argv];
  const g = new GetoptLongOnly(args, BIOS_OPTS, io.err);
  const plan = {
    doMore: true,
    contSelfTest: false,
    startup12: 1,
    startup2: 0,
    unassertPp: false,
    ensureActivated: false,
  };
  const r: Parsed = { plan, tpm2: false };
  const startup = (s12: number, s2: number, more: boolean) => {
    plan.startup12 = s12;
    plan.startup2 = s2;
    plan.doMore = more;
  };
  for (let c = g.next(); c !== -1; c = g.next()) {
    switch (c) {
      case 'D':
        r.device = g.optarg!;
        break;
      case 'T': {
        const t = parseBiosTcp(g.optarg!);
        if ('error' in t) {
          io.err(t.error);
          return 1;
        }
        r.tcp = t;
        break;
      }
      case 'U':
        r.unix = g.optarg!;
        break;
      case 'c':
        startup(1, 0, true); // TPM_ST_CLEAR, TPM2_SU_CLEAR
        break;
      case 'd':
        startup(3, NO_STARTUP, false); // TPM_ST_DEACTIVATED; nothing on TPM 2
        break;
      case 'h':
        io.out(usage(prog));
        return 0;
      case 'n':
        startup(NO_STARTUP, NO_STARTUP, true);
        break;
      case 's':
        startup(2, 1, true); // TPM_ST_STATE, TPM2_SU_STATE
        break;
      case 'o':
        plan.doMore = false;
        break;
      case 'C':
        plan.contSelfTest = true;
        break;
      case 'E':
        plan.ensureActivated = true;
        break;
      case 'u':
        plan.unassertPp = true;
        break;
      case '2':
        r.tpm2 = true;
        break;
      default: // '?', and -v, which swtpm_bios lists but does not handle
        io.out(usage(prog));
        return 1;
    }
  }
  return r;
}

/** Runs swtpm_bios' logic; resolves with the exit code. */
export async function run(
  argv: readonly string[],
  io: BiosIo,
  prog: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const p = parse(argv, prog, io);
  if (typeof p === 'number') return p;
  const target = chooseTarget(p, env);
  return p.tpm2 ? tpm2Bios(target, p.plan, io) : tpm12Bios(target, p.plan, io);
}

/** Entry point of bin/tswtpm_bios.js: runs and sets the exit code. */
export function main(argv: readonly string[]): void {
  const prog = basename(process.argv[1] ?? 'tswtpm_bios').replace(/\.js$/, '');
  const io: BiosIo = {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
  };
  run(argv, io, prog).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
