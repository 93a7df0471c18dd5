import type { BackendConfig } from '../../storage/uri.js';
import { type OptDef, getopt } from '../common/getopt.js';
import { CliError, parseSubopts } from '../common/subopts.js';

export type Iface = 'socket' | 'chardev' | 'cuse';

export interface ChannelConfig {
  readonly type: 'tcp' | 'unixio';
  readonly port?: number;
  readonly bindaddr?: string;
  readonly path?: string;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly fd?: number;
  readonly clientfd?: number;
  readonly disconnect: boolean;
  readonly terminate: boolean;
}

/** Everything `tswtpm socket|chardev|cuse` was asked to do. Raw sub-option values are kept. */
export interface Config {
  readonly iface: Iface;
  tpm2: boolean;
  server?: ChannelConfig;
  ctrl?: ChannelConfig;
  terminate: boolean;
  daemon: boolean;
  /** Raw `--tpmstate` value (validated here, interpreted by storage/uri.ts). */
  tpmstate?: string;
  /** A state location given as a structure (by an embedder); it wins over `tpmstate`. */
  backend?: BackendConfig;
  flags: {
    notNeedInit: boolean;
    startup: 'clear' | 'state' | 'deactivated' | 'none' | undefined;
    disableAutoShutdown: boolean;
  };
  locality: { rejectLocality4: boolean; allowSetLocality: boolean };
  pid?: Record<string, string | number | boolean>;
  log?: Record<string, string | number | boolean>;
  key?: Record<string, string | number | boolean>;
  migrationKey?: Record<string, string | number | boolean>;
  migration: { incoming: boolean; releaseLockOutgoing: boolean };
  chardev?: string;
  /** The `-c` device once opened (at start-up, before `--runas`, as swtpm does). */
  chardevFd?: number;
  /** chardev `--vtpm-proxy`: serve a new Linux /dev/tpmN (its implied settings are applied). */
  vtpmProxy: boolean;
  name?: string;
  /** CUSE `-M/--maj`, `-m/--min`: device numbers (0 or absent: the kernel chooses). */
  maj?: number;
  min?: number;
  /** `-r/--runas USER`. */
  runas?: string;
  /** Raw `--seccomp` value; parsed after --print-capabilities (cli/sandbox-setup.ts). */
  seccomp?: string;
  /** `-R/--chroot DIR`. */
  chroot?: string;
  printCapabilities: boolean;
  printStates: boolean;
  /** `--print-info N` (0.10+): TPMLIB_GetInfo flags; 0 means not given, as in swtpm. */
  printInfo: number;
  /** `--print-profiles` (0.10+, needs libtpms 0.10). */
  printProfiles: boolean;
  /** `--profile ...` sub-options (0.10+, TPM 2, needs libtpms 0.10); checked at start. */
  profile?: Record<string, string | number | boolean>;
  /** `--pcap ...` sub-options (swtpm master); the file is opened at start. */
  pcap?: Record<string, string | number | boolean>;
  help: boolean;
  version: boolean;
}

const COMMON: OptDef[] = [
  { long: 'tpm2', arg: false },
  { long: 'tpmstate', arg: true },
  { long: 'flags', arg: true },
  { long: 'locality', arg: true },
  { long: 'pid', arg: true },
  { long: 'log', arg: true },
  { long: 'key', arg: true },
  { long: 'migration-key', arg: true },
  { long: 'migration', arg: true },
  { long: 'runas', short: 'r', arg: true },
  { long: 'seccomp', arg: true },
  { long: 'chroot', short: 'R', arg: true },
  { long: 'print-capabilities', arg: false },
  { long: 'print-states', arg: false },
  { long: 'profile', arg: true },
  { long: 'print-profiles', arg: false },
  { long: 'print-info', arg: true },
  { long: 'pcap', arg: true },
  { long: 'help', short: 'h', arg: false },
  { long: 'version', short: 'v', arg: false },
  { long: 'daemon', short: 'd', arg: false },
];

export const OPTIONS: Readonly<Record<Iface, readonly OptDef[]>> = {
  socket: [
    ...COMMON,
    { long: 'port', short: 'p', arg: true },
    { long: 'fd', short: 'f', arg: true },
    { long: 'terminate', short: 't', arg: false },
    { long: 'server', arg: true },
    { long: 'ctrl', arg: true },
  ],
  chardev: [
    ...COMMON,
    { long: 'chardev', short: 'c', arg: true },
    { long: 'fd', short: 'f', arg: true },
    { long: 'ctrl', arg: true },
    { long: 'vtpm-proxy', arg: false },
  ],
  cuse: [
    ...COMMON.filter((d) => d.long !== 'daemon'),
    { long: 'name', short: 'n', arg: true },
    { long: 'maj', short: 'M', arg: true },
    { long: 'min', short: 'm', arg: true },
  ],
};

const CHANNEL_SPEC = {
  type: 'string',
  port: 'int',
  bindaddr: 'string',
  ifname: 'string',
  path: 'string',
  mode: 'mode',
  uid: 'uid',
  gid: 'gid',
  fd: 'int',
  clientfd: 'int',
  disconnect: 'bool',
  terminate: 'bool',
} as const;

function channel(what: 'server' | 'ctrl', value: string): ChannelConfig {
  const o = parseSubopts(what, value, CHANNEL_SPEC);
  const type = (o.type as string | undefined) ?? (what === 'server' ? 'tcp' : undefined);
  if (type !== 'tcp' && type !== 'unixio') {
    throw new CliError(
      what === 'ctrl'
        ? `Unsupport control channel type: ${type ?? ''}`
        : `Unsupport socket type: ${type ?? ''}`,
    );
  }
  const c: Record<string, unknown> = {
    type,
    disconnect: o.disconnect === true,
    terminate: o.terminate === true,
  };
  for (const k of ['port', 'bindaddr', 'path', 'mode', 'uid', 'gid', 'fd', 'clientfd']) {
    if (o[k] !== undefined) c[k] = o[k];
  }
  return c as unknown as ChannelConfig;
}

/** Parses the arguments after the interface name. Throws CliError. */
export function parseArgs(iface: Iface, argv: readonly string[]): Config {
  const { opts, rest } = getopt(iface, argv, OPTIONS[iface]);
  if (rest.length > 0) throw new CliError(`Unknown parameter '${rest[0]}'`);
  const cfg: Config = {
    iface,
    tpm2: false,
    terminate: false,
    daemon: false,
    flags: { notNeedInit: false, startup: undefined, disableAutoShutdown: false },
    locality: { rejectLocality4: false, allowSetLocality: false },
    migration: { incoming: false, releaseLockOutgoing: false },
    vtpmProxy: false,
    printCapabilities: false,
    printStates: false,
    printInfo: 0,
    printProfiles: false,
    help: false,
    version: false,
  };
  for (const { name, value } of opts) apply(cfg, name, value ?? '');
  if (cfg.vtpmProxy) {
    // swtpm's implied settings (runtime-features.md §3.2): the TPM starts at launch with
    // Startup(CLEAR) unless --flags names another startup type, the kernel's
    // SET_LOCALITY vendor command is allowed, and losing the fd ends the process.
    cfg.flags.notNeedInit = true;
    cfg.flags.startup ??= 'clear';
    cfg.locality.allowSetLocality = true;
    cfg.terminate = true;
  }
  return cfg;
}

function apply(cfg: Config, name: string, v: string): void {
  switch (name) {
    case 'tpm2':
      cfg.tpm2 = true;
      return;
    case 'help':
      cfg.help = true;
      return;
    case 'version':
      cfg.version = true;
      return;
    case 'terminate':
      cfg.terminate = true;
      return;
    case 'daemon':
      cfg.daemon = true;
      return;
    case 'print-capabilities':
      cfg.printCapabilities = true;
      return;
    case 'print-states':
      cfg.printStates = true;
      return;
    case 'print-profiles':
      cfg.printProfiles = true;
      return;
    case 'print-info':
      cfg.printInfo = parseInfoFlags(v);
      return;
    case 'profile':
      cfg.profile = parseSubopts('profile', v, {
        name: 'string',
        profile: 'string',
        file: 'string',
        fd: 'int',
        'remove-disabled': 'string',
      });
      return;
    case 'pcap':
      cfg.pcap = parseSubopts('pcap', v, {
        file: 'string',
        fd: 'int',
        truncate: 'bool',
        mode: 'mode',
        // swtpm reads this boolean as an int: any occurrence, even `checksums=false`,
        // turns checksums on (the sink tests for the key, not its value).
        checksums: 'bool',
      });
      return;
    case 'server':
      cfg.server = channel('server', v);
      return;
    case 'ctrl':
      cfg.ctrl = channel('ctrl', v);
      return;
    case 'port': {
      if (!/^\d+$/.test(v)) throw new CliError(`Cannot parse socket port number '${v}'.`);
      if (Number(v) > 65535) throw new CliError('Port is outside valid range.');
      cfg.server = { type: 'tcp', port: Number(v), disconnect: true, terminate: false };
      return;
    }
    case 'fd': {
      const fd = Number.parseInt(v, 10);
      if (!/^\d+$/.test(v) || fd < 3) throw new CliError(`Invalid file descriptor '${v}'`);
      cfg.server = { type: 'tcp', fd, disconnect: false, terminate: true };
      cfg.terminate = true;
      return;
    }
    case 'chardev':
      cfg.chardev = v;
      return;
    case 'name':
      cfg.name = v;
      return;
    case 'tpmstate':
      cfg.tpmstate = v;
      parseSubopts('tpmstate', v, {
        dir: 'string',
        'backend-uri': 'string',
        mode: 'mode',
        lock: 'bool',
        backup: 'bool',
        fsync: 'bool',
      });
      return;
    case 'flags': {
      const o = parseSubopts('flags', v, {
        'not-need-init': 'bool',
        'startup-clear': 'bool',
        'startup-state': 'bool',
        'startup-deactivated': 'bool',
        'startup-none': 'bool',
        'disable-auto-shutdown': 'bool',
      });
      // Priority when several are given: clear > state > deactivated > none.
      const startup = o['startup-clear']
        ? 'clear'
        : o['startup-state']
          ? 'state'
          : o['startup-deactivated']
            ? 'deactivated'
            : o['startup-none']
              ? 'none'
              : undefined;
      cfg.flags = {
        notNeedInit: o['not-need-init'] === true || startup !== undefined,
        startup,
        disableAutoShutdown: o['disable-auto-shutdown'] === true,
      };
      return;
    }
    case 'locality': {
      const o = parseSubopts('locality', v, {
        'reject-locality-4': 'bool',
        'allow-set-locality': 'bool',
      });
      cfg.locality = {
        rejectLocality4: o['reject-locality-4'] === true,
        allowSetLocality: o['allow-set-locality'] === true,
      };
      return;
    }
    case 'pid':
      cfg.pid = parseSubopts('pid', v, { file: 'string', fd: 'int' });
      return;
    case 'log':
      cfg.log = parseSubopts('logging', v, {
        file: 'string',
        fd: 'int',
        level: 'int',
        prefix: 'string',
        truncate: 'bool',
      });
      return;
    case 'key':
    case 'migration-key':
      cfg[name === 'key' ? 'key' : 'migrationKey'] = parseSubopts(name, v, KEY_SPEC);
      return;
    case 'migration': {
      const o = parseSubopts('migration', v, { incoming: 'bool', 'release-lock-outgoing': 'bool' });
      cfg.migration = {
        incoming: o.incoming === true,
        releaseLockOutgoing: o['release-lock-outgoing'] === true,
      };
      return;
    }
    case 'maj':
    case 'min':
      if (!/^\d+$/.test(v) || Number(v) > 0xffffffff) {
        throw new CliError(`Could not parse ${name === 'maj' ? 'major' : 'minor'} number '${v}'`);
      }
      cfg[name] = Number(v);
      return;
    case 'runas':
      cfg.runas = v;
      return;
    case 'seccomp':
      // swtpm parses it only after --print-capabilities has exited.
      cfg.seccomp = v;
      return;
    case 'chroot':
      cfg.chroot = v;
      return;
    case 'vtpm-proxy':
      cfg.vtpmProxy = true;
      return;
  }
}

/**
 * `--print-info` takes strtoul(base 0) syntax (decimal, 0x hex, 0 octal) that must fit
 * an unsigned int; swtpm's message otherwise.
 */
export function parseInfoFlags(v: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*|)$/.exec(v);
  let n = Number.NaN;
  if (m !== null) {
    const digits = m[2]!;
    // No digits: strtoul converts nothing, which swtpm accepts only for an empty value.
    n =
      digits === '' && v !== ''
        ? Number.NaN
        : digits === ''
          ? 0
          : Number(/^0[0-7]+$/.test(digits) ? `0o${digits.slice(1)}` : digits);
    // strtoul negates a '-' value in unsigned long: only -0 still fits an unsigned int.
    if (m[1] === '-' && n !== 0) n = Number.NaN;
  }
  if (!Number.isSafeInteger(n) || n > 0xffffffff) {
    throw new CliError(`Cannot parse info value '${v}'.`);
  }
  return n;
}

const KEY_SPEC = {
  file: 'string',
  fd: 'int',
  pwdfile: 'string',
  pwdfd: 'int',
  format: 'string',
  mode: 'string',
  remove: 'bool',
  kdf: 'string',
} as const;
