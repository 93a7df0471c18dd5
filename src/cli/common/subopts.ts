import { getgrnam, getpwnam } from './ids.js';

/**
 * swtpm's `--opt k=v,k=v` sub-option syntax: comma-separated `name=value` or bare
 * `name` tokens; a value starting with `{` runs to the matching `}`.
 */

/** A CLI error: one line on stderr (with the `swtpm:`-style prefix) and an exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly code = 'CLI_USAGE' as const;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export type SubValue = string | true;

/** Splits `value` into ordered [name, value] pairs. */
export function splitSubopts(value: string): Array<[string, SubValue]> {
  const out: Array<[string, SubValue]> = [];
  let i = 0;
  while (i < value.length) {
    let j = i;
    let depth = 0;
    while (j < value.length) {
      const c = value[j];
      if (c === '{') depth++;
      else if (c === '}') depth = Math.max(0, depth - 1);
      else if (c === ',' && depth === 0) break;
      j++;
    }
    const tok = value.slice(i, j);
    if (tok !== '') {
      const eq = tok.indexOf('=');
      out.push(eq < 0 ? [tok, true] : [tok.slice(0, eq), tok.slice(eq + 1)]);
    }
    i = j + 1;
  }
  return out;
}

export type SubKind = 'string' | 'int' | 'mode' | 'bool' | 'uid' | 'gid';

/**
 * Parses `value` for option `what` ("tpmstate", "server", ...) against `spec`, with
 * swtpm's messages: "Error parsing X options: Unknown option 'tok'", "invalid number".
 */
export function parseSubopts(
  what: string,
  value: string,
  spec: Readonly<Record<string, SubKind>>,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [name, v] of splitSubopts(value)) {
    const kind = spec[name];
    // swtpm's parser matches `name=` only with a value: `port=` is an unknown option.
    if (kind === undefined || v === '') {
      const tok = v === true ? name : `${name}=${v}`;
      throw new CliError(`Error parsing ${what} options: Unknown option '${tok}'`);
    }
    out[name] = convert(what, name, kind, v);
  }
  return out;
}

function convert(
  what: string,
  name: string,
  kind: SubKind,
  v: SubValue,
): string | number | boolean {
  switch (kind) {
    case 'bool':
      return v === true || /^(true|1)$/i.test(v);
    case 'string':
      if (v === true)
        throw new CliError(`Error parsing ${what} options: Missing value for '${name}'`);
      return v;
    case 'int': {
      if (v === true || !/^[+-]?\d+$/.test(v)) {
        throw new CliError(
          `Error parsing ${what} options: invalid number '${v === true ? '' : v}'`,
        );
      }
      return Number.parseInt(v, 10);
    }
    case 'mode': {
      const n = v === true ? Number.NaN : Number.parseInt(v, 8);
      if (v === true || !/^[0-7]+$/.test(v) || n > 0o777) {
        throw new CliError(
          `Error parsing ${what} options: invalid mode type '${v === true ? '' : v}'`,
        );
      }
      return n;
    }
    case 'uid':
    case 'gid': {
      if (v === true)
        throw new CliError(`Error parsing ${what} options: Missing value for '${name}'`);
      if (/^\d+$/.test(v)) return Number.parseInt(v, 10);
      const id = kind === 'uid' ? getpwnam(v) : getgrnam(v);
      if (id === undefined) {
        throw new CliError(
          `Error parsing ${what} options: unknown ${kind === 'uid' ? 'user' : 'group'} '${v}'`,
        );
      }
      return id;
    }
  }
}
