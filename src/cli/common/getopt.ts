import { CliError } from './subopts.js';

/** One option as getopt_long knows it. */
export interface OptDef {
  readonly long: string;
  readonly short?: string;
  readonly arg: boolean;
}

export interface Parsed {
  /** Options in command-line order (repeatable options keep every value). */
  readonly opts: Array<{ name: string; value: string | undefined }>;
  readonly rest: string[];
}

/**
 * getopt_long as swtpm uses it: `--name value`, `--name=value`, unique prefixes of long
 * names, `-x value`, `-xvalue`, bundled flags, `--` ends options. Errors carry glibc's
 * wording with `prog` as the program name; the caller adds the usage text.
 */
export function getopt(prog: string, argv: readonly string[], defs: readonly OptDef[]): Parsed {
  const opts: Parsed['opts'] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const exact = defs.find((d) => d.long === name);
      const cands = exact ? [exact] : defs.filter((d) => d.long.startsWith(name));
      if (cands.length === 0) throw new CliError(`${prog}: unrecognized option '${a}'`);
      if (cands.length > 1) throw new CliError(`${prog}: option '${a}' is ambiguous`);
      const d = cands[0]!;
      if (!d.arg) {
        if (eq >= 0) throw new CliError(`${prog}: option '--${d.long}' doesn't allow an argument`);
        opts.push({ name: d.long, value: undefined });
        continue;
      }
      let value: string | undefined = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (value === undefined)
        throw new CliError(`${prog}: option '--${d.long}' requires an argument`);
      opts.push({ name: d.long, value });
      value = undefined;
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j]!;
        const d = defs.find((x) => x.short === c);
        if (d === undefined) throw new CliError(`${prog}: invalid option -- '${c}'`);
        if (!d.arg) {
          opts.push({ name: d.long, value: undefined });
          continue;
        }
        const value = j + 1 < a.length ? a.slice(j + 1) : argv[++i];
        if (value === undefined)
          throw new CliError(`${prog}: option requires an argument -- '${c}'`);
        opts.push({ name: d.long, value });
        break;
      }
      continue;
    }
    rest.push(a);
  }
  return { opts, rest };
}
