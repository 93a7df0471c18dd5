/**
 * tswtpm_ioctl: a drop-in for swtpm_ioctl 0.7.1. Same options (parsed by a
 * getopt_long_only clone), same stdout/stderr bytes, same exit codes (0 success,
 * 1 for any failure), same 20 s response timeout. Talks to `--tcp`, `--unix` or a
 * CUSE device path (ioctl through koffi).
 */
import { readFileSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { respMaxSize } from '../../protocol/ctrl/client-codec.js';
import { type CtrlRequest, defByName } from '../../protocol/ctrl/index.js';
import { load, save } from './ioctl-blob.js';
import { type Io, hash, simple } from './ioctl-cmds.js';
import { type Target, openChannel } from './ioctl-conn.js';
import { GetoptLongOnly, IOCTL_OPTS } from './ioctl-getopt.js';
import { parseInfoFlags, parseTcp, scanU32, scanU64 } from './ioctl-scan.js';

/** Our own version line; the rest of the output is swtpm_ioctl 0.7.1's (docs/compat.md). */
const VERSION = `TPM emulator control tool version ${ownVersion()} (tswtpm_ioctl, compatible with swtpm_ioctl 0.7.1)\n`;

function ownVersion(): string {
  const url = new URL('../../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

const usage = (prog: string) => `${VERSION}
Usage: ${prog} command <device path>

The following commands are supported:
--tpm-device <device> : use the given device; default is /dev/tpm0
--tcp [<host>]:[<prt>]: connect to TPM on given host and port;
                        default host is 127.0.0.1, default port is 6546
--unix <path>         : connect to TPM using UnixIO socket
-c                    : get ptm capabilities
-i                    : do a hardware TPM_Init; if volatile state is found,
                        it will resume the TPM with it and delete it
                        afterwards
--stop                : stop the TPM without exiting
-s                    : shutdown the TPM; stops and exists
-e                    : get the tpmEstablished bit
-r <loc>              : reset the tpmEstablished bit; use the given locality
-v                    : store the TPM's volatile data
-C                    : cancel an ongoing TPM command
-l <loc>              : set the locality to the given number; valid
                        localities are 0-4
-h <data>             : hash the given data; if data is '-' then data are
                        read from stdin
--save <type> <file>  : store the TPM state blob of given type in a file;
                        type may be one of volatile, permanent, or savestate
--load <type> <file>  : load the TPM state blob of given type from a file;
                        type may be one of volatile, permanent, or savestate
-g                    : get configuration flags indicating which keys are in
                        use
-b <buffersize>       : set the buffer size of the TPM and get its current
                        size; get minimum and maximum supported sizes
--info <flags>        : get TPM implementation specific information;
                        flags must be an integer value
--lock-storage <retries>
                      : lock the storage, retrying every 10 ms up to
                        <retries> times
--version             : display version and exit
--help                : display help screen and exit

`;

interface Parsed {
  command: string;
  target: Target;
  locality: number;
  bufferSize: number;
  infoFlags: bigint;
  hashData: string;
  retries: number;
  blobType: string;
  file: string;
}

/** Parses like swtpm_ioctl; a number is the exit code of an early end. */
function parse(argv: readonly string[], io: Io, prog: string): Parsed | number {
  const args = [prog, ...argv];
  const g = new GetoptLongOnly(args, IOCTL_OPTS, io.err);
  const p: Partial<Parsed> = { locality: 0, bufferSize: 0, infoFlags: 0n };
  let tcp: { host: string; port: number } | undefined;
  let unix: string | undefined;
  let dev: string | undefined;
  // swtpm_ioctl takes the command from argv and the value from argv[optind - 1]
  // (not optarg), so `-l=3` is read as "-l=3".
  const setCommand = (s: string): boolean => {
    if (p.command !== undefined) {
      io.err('Only one command may be given.\n');
      return false;
    }
    p.command = s;
    return true;
  };
  for (let c = g.next(); c !== -1; c = g.next()) {
    const val = args[g.optind - 1]!;
    const cmdWithArg = args[g.optind - 2]!;
    switch (c) {
      case 'D':
        dev = g.optarg;
        break;
      case 'T': {
        const t = parseTcp(g.optarg!);
        if ('error' in t) {
          io.err(t.error);
          return 1;
        }
        tcp = t;
        break;
      }
      case 'U':
        unix = g.optarg;
        break;
      case 'V':
        io.out(VERSION);
        return 0;
      case 'H':
        io.out(usage(prog));
        return 0;
      case 'r':
      case 'l': {
        const n = scanU32(val);
        if (n === undefined) io.err(`Could not get locality number from ${val}.\n`);
        else if (n > 4) io.err('Locality outside valid range of [0..4].\n');
        if (n === undefined || n > 4) return 1;
        p.locality = n;
        if (!setCommand(cmdWithArg)) return 1;
        break;
      }
      case 'h':
        p.hashData = val;
        if (!setCommand(cmdWithArg)) return 1;
        break;
      case 'b': {
        const n = scanU32(val);
        if (n === undefined) {
          io.err(`Could not get buffersize from ${val}.\n`);
          return 1;
        }
        p.bufferSize = n;
        if (!setCommand(cmdWithArg)) return 1;
        break;
      }
      case 'K': {
        const n = scanU32(val);
        if (n === undefined) {
          io.err(`Could not get the number of retries from ${val}.\n`);
          return 1;
        }
        p.retries = n;
        if (!setCommand(cmdWithArg)) return 1;
        break;
      }
      case 'I': {
        const f = parseInfoFlags(val);
        if (f === undefined) {
          io.err('Cannot parse info flags.\n');
          return 1;
        }
        p.infoFlags = f;
        if (!setCommand(cmdWithArg)) return 1;
        break;
      }
      case 'S':
      case 'L': {
        p.blobType = val;
        if (g.optind >= args.length) {
          io.err(`Missing filename argument for --${c === 'S' ? 'save' : 'load'} option\n`);
          return 1;
        }
        p.file = args[g.optind++]!;
        if (!setCommand(cmdWithArg)) return 1;
        break;
      }
      case '?':
        break;
      default:
        if (!setCommand(val)) return 1;
    }
  }
  if (p.command === undefined) {
    io.err('No valid command.\n');
    return 1;
  }
  if (tcp) p.target = { kind: 'tcp', ...tcp };
  else if (unix !== undefined) p.target = { kind: 'unix', path: unix };
  else {
    dev ??= args[g.optind];
    if (dev === undefined) {
      io.err('Error: Missing device name.\n');
      return 1;
    }
    p.target = { kind: 'device', path: dev };
  }
  return p as Parsed;
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

/** Runs one invocation; resolves the exit code. */
export async function run(
  argv: readonly string[],
  io: Io = processIo(),
  prog = progName(),
): Promise<number> {
  const p = parse(argv, io, prog);
  if (typeof p === 'number') return p;
  // Device paths only: the size of the read()/write() blob transfers (0 = ioctl chunks).
  const env = p.target.kind === 'device' ? process.env.SWTPM_IOCTL_BUFFERSIZE : undefined;
  const n = env === undefined ? 0n : (scanU64(env) ?? 0n);
  const bufferSize = env !== undefined && n === 0n ? 1n : n;
  const ch = await openChannel(p.target, io.err);
  if (!ch) return 1;
  const simpleCmd = (req: CtrlRequest, show?: Parameters<typeof simple>[3], readLen?: number) =>
    simple(ch, io, req, show, readLen);
  try {
    switch (p.command) {
      case '-c':
        return await simpleCmd({ cmd: 'GET_CAPABILITY' }, (x) =>
          io.out(`ptm capability is 0x${(x.rsp.caps ?? 0n).toString(16)}\n`),
        );
      case '-i':
        return await simpleCmd({ cmd: 'INIT', initFlags: 1 });
      case '-e':
        return await simpleCmd({ cmd: 'GET_TPMESTABLISHED' }, (x) =>
          io.out(`tpmEstablished is ${x.rsp.bit ?? 0}\n`),
        );
      case '-r':
        return await simpleCmd({ cmd: 'RESET_TPMESTABLISHED', locality: p.locality });
      case '-s':
        return await simpleCmd({ cmd: 'SHUTDOWN' });
      case '--stop':
        return await simpleCmd({ cmd: 'STOP' });
      case '-l':
        return await simpleCmd({ cmd: 'SET_LOCALITY', locality: p.locality });
      case '-h':
        return await hash(ch, io, p.hashData);
      case '-C':
        return await simpleCmd({ cmd: 'CANCEL_TPM_CMD' });
      case '-v':
        return await simpleCmd({ cmd: 'STORE_VOLATILE' });
      case '--save':
        return await save(ch, io, p.blobType, p.file, bufferSize);
      case '--load':
        return await load(ch, io, p.blobType, p.file, bufferSize);
      case '-g':
        return await simpleCmd({ cmd: 'GET_CONFIG' }, (x) =>
          io.out(`ptm configuration flags: 0x${(x.rsp.flags ?? 0).toString(16)}\n`),
        );
      case '-b':
        return await simpleCmd({ cmd: 'SET_BUFFERSIZE', bufferSize: p.bufferSize }, (x) =>
          io.out(
            lines(
              `TPM buffersize: ${x.rsp.bufferSize ?? 0}`,
              `minimum size  : ${x.rsp.minSize ?? 0}`,
              `maximum size  : ${x.rsp.maxSize ?? 0}`,
            ),
          ),
        );
      case '--info':
        return await simpleCmd(
          { cmd: 'GET_INFO', flags: p.infoFlags, offset: 0 },
          (x) => io.out(Buffer.concat([cString(x.union.subarray(12)), Buffer.from('\n')])),
          respMaxSize(defByName('GET_INFO')),
        );
      case '--lock-storage':
        // swtpm_ioctl 0.8+ sends 0 whatever it is given; the retries asked for are sent.
        return await simpleCmd({ cmd: 'LOCK_STORAGE', retries: p.retries });
      default:
        io.out(usage(prog));
        return 1;
    }
  } finally {
    ch.close();
  }
}

/** printf("%s") of a buffer: up to the first NUL. */
function cString(b: Buffer): Buffer {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul);
}

function progName(): string {
  return basename(process.argv[1] ?? 'tswtpm_ioctl').replace(/\.js$/, '');
}

function processIo(): Io {
  return {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
    stdin(buf) {
      for (;;) {
        try {
          return readSync(0, buf, 0, buf.length, null);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return 0;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        }
      }
    },
  };
}

/** Entry point of bin/tswtpm_ioctl.js: runs and sets the exit code. */
export function main(argv: readonly string[]): void {
  run(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
