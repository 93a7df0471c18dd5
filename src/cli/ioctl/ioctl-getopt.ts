/**
 * glibc's getopt_long_only() with an empty short-option string, as swtpm_ioctl calls
 * it: every `-x` and `--x` is a long option (unique prefixes accepted), arguments are
 * permuted so that non-options end up after the options (unless POSIXLY_CORRECT is
 * set), `--` ends the options. Messages are glibc 2.36's, word for word.
 *
 * swtpm_ioctl reads `argv[optind - 1]` and `argv[optind - 2]` after each option, so the
 * permutation is reproduced on the caller's array, not hidden.
 */

export interface LongOpt {
  readonly name: string;
  readonly hasArg: boolean;
  readonly val: string;
}

export class GetoptLongOnly {
  optind = 1;
  optarg: string | undefined;
  private first = 1;
  private last = 1;
  private readonly permute: boolean;

  constructor(
    private readonly argv: string[],
    private readonly opts: readonly LongOpt[],
    private readonly err: (line: string) => void,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.permute = env.POSIXLY_CORRECT === undefined;
  }

  /** The next option's `val`, '?' for an error (already reported), or -1 at the end. */
  next(): string | -1 {
    const argv = this.argv;
    const argc = argv.length;
    this.optarg = undefined;
    if (this.last > this.optind) this.last = this.optind;
    if (this.first > this.optind) this.first = this.optind;
    if (this.permute) {
      if (this.first !== this.last && this.last !== this.optind) this.exchange();
      else if (this.last !== this.optind) this.first = this.optind;
      while (this.optind < argc && nonOption(argv[this.optind]!)) this.optind++;
      this.last = this.optind;
    }
    if (this.optind !== argc && argv[this.optind] === '--') {
      this.optind++;
      if (this.first !== this.last && this.last !== this.optind) this.exchange();
      else if (this.first === this.last) this.first = this.optind;
      this.last = argc;
      this.optind = argc;
    }
    if (this.optind === argc) {
      if (this.first !== this.last) this.optind = this.first;
      return -1;
    }
    if (nonOption(argv[this.optind]!)) return -1; // only reached in POSIXLY_CORRECT order
    return this.long(argv[this.optind]!);
  }

  private long(arg: string): string {
    const prog = this.argv[0] ?? '';
    const prefix = arg[1] === '-' ? '--' : '-';
    const nextchar = arg.slice(prefix.length);
    const eq = nextchar.indexOf('=');
    const name = eq < 0 ? nextchar : nextchar.slice(0, eq);
    let found = this.opts.find((o) => o.name === name);
    if (!found) {
      const cands = this.opts.filter((o) => o.name.startsWith(name));
      if (cands.length > 1) {
        const list = cands.map((o) => ` '${prefix}${o.name}'`).join('');
        this.err(`${prog}: option '${prefix}${nextchar}' is ambiguous; possibilities:${list}\n`);
        this.optind++;
        return '?';
      }
      found = cands[0];
    }
    if (!found) {
      this.err(`${prog}: unrecognized option '${prefix}${nextchar}'\n`);
      this.optind++;
      return '?';
    }
    this.optind++;
    if (eq >= 0) {
      if (!found.hasArg) {
        this.err(`${prog}: option '${prefix}${found.name}' doesn't allow an argument\n`);
        return '?';
      }
      this.optarg = nextchar.slice(eq + 1);
    } else if (found.hasArg) {
      if (this.optind >= this.argv.length) {
        this.err(`${prog}: option '${prefix}${found.name}' requires an argument\n`);
        return '?';
      }
      this.optarg = this.argv[this.optind++];
    }
    return found.val;
  }

  /** Moves the skipped non-options [first, last) behind the options [last, optind). */
  private exchange(): void {
    const a = this.argv;
    const moved = a.splice(this.first, this.last - this.first);
    a.splice(this.first + (this.optind - this.last), 0, ...moved);
    this.first += this.optind - this.last;
    this.last = this.optind;
  }
}

function nonOption(s: string): boolean {
  return s[0] !== '-' || s.length === 1;
}

/** swtpm_ioctl's long-option table, in its order (prefix matching depends on it). */
export const IOCTL_OPTS: readonly LongOpt[] = [
  ['tpm-device', 1, 'D'],
  ['tcp', 1, 'T'],
  ['unix', 1, 'U'],
  ['c', 0, 'c'],
  ['i', 0, 'i'],
  ['stop', 0, 't'],
  ['s', 0, 's'],
  ['e', 0, 'e'],
  ['r', 1, 'r'],
  ['v', 0, 'v'],
  ['C', 0, 'C'],
  ['l', 1, 'l'],
  ['h', 1, 'h'],
  ['g', 0, 'g'],
  ['b', 1, 'b'],
  ['save', 1, 'S'],
  ['load', 1, 'L'],
  ['version', 0, 'V'],
  ['info', 1, 'I'],
  ['help', 0, 'H'],
  // swtpm_ioctl 0.8+.
  ['lock-storage', 1, 'K'],
].map(([name, arg, val]) => ({ name: name as string, hasArg: arg === 1, val: val as string }));
