/**
 * The C number parsing swtpm_ioctl relies on, so that odd input gives the same
 * values: sscanf("%u") (glibc: strtoul on 64 bits, then truncated to 32),
 * strtoull(s, &end, 0), and its `--tcp [host]:[port]` splitting.
 */

const U64_MAX = (1n << 64n) - 1n;
const SPACE = /^[ \t\n\v\f\r]*/;

/** Digits in `base` at the start of `s` (base 16 after a 0x prefix handled by the caller). */
function digits(s: string, base: number): string {
  const re = base === 16 ? /^[0-9a-fA-F]*/ : base === 8 ? /^[0-7]*/ : /^[0-9]*/;
  return re.exec(s)![0];
}

/** strtoul/strtoull: value, characters consumed (0 when no digits), overflow (ERANGE). */
function strtou64(s: string, base0: boolean): { value: bigint; used: number; range: boolean } {
  const ws = SPACE.exec(s)![0].length;
  let i = ws;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') {
    neg = s[i] === '-';
    i++;
  }
  let base = 10;
  if (base0 && s[i] === '0') {
    if ((s[i + 1] === 'x' || s[i + 1] === 'X') && digits(s.slice(i + 2), 16).length > 0) {
      base = 16;
      i += 2;
    } else base = 8;
  }
  const d = digits(s.slice(i), base);
  if (d.length === 0) return { value: 0n, used: 0, range: false };
  let v = 0n;
  for (const c of d) v = v * BigInt(base) + BigInt(Number.parseInt(c, base));
  if (v > U64_MAX) return { value: U64_MAX, used: i + d.length, range: true };
  if (neg) v = (U64_MAX + 1n - v) & U64_MAX;
  return { value: v, used: i + d.length, range: false };
}

/** sscanf(s, "%u", &u32): the value, or undefined when no number could be read. */
export function scanU32(s: string): number | undefined {
  const r = strtou64(s, false);
  if (r.used === 0) return undefined;
  return Number(r.value & 0xffffffffn);
}

/** sscanf(s, "%zu", &size): the value, or undefined when no number could be read. */
export function scanU64(s: string): bigint | undefined {
  const r = strtou64(s, false);
  return r.used === 0 ? undefined : r.value;
}

/** `strtoull(s, &end, 0)` accepted only when it consumed everything without ERANGE. */
export function parseInfoFlags(s: string): bigint | undefined {
  const r = strtou64(s, true);
  if (r.range) return undefined;
  if (r.used === 0) return s.length === 0 ? 0n : undefined; // end == s: ok only for ""
  return r.used === s.length ? r.value : undefined;
}

export type TcpTarget = { host: string; port: number };

/**
 * `--tcp [<host>]:[<port>]`, split at the last colon, default 127.0.0.1:6546. The port
 * is read with %u, range-checked as a signed int (so negatives pass) and used as a
 * 16-bit value. The range message shows the argument from its second character on.
 */
export function parseTcp(arg: string): TcpTarget | { error: string } {
  const pos = arg.lastIndexOf(':');
  if (pos < 0) return { host: arg, port: 6546 };
  const host = pos === 0 ? '127.0.0.1' : arg.slice(0, pos);
  const portStr = arg.slice(pos + 1);
  if (pos === 0 && portStr.length === 0) return { host, port: 6546 };
  const p = scanU32(portStr);
  if (p === undefined) return { error: `Invalid port '${portStr}'\n` };
  if ((p | 0) > 65535) return { error: `Port '${arg.slice(1)}' outside valid range.\n` };
  return { host, port: p & 0xffff };
}
