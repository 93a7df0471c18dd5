/**
 * tswtpm_ioctl's argument parsing: the getopt_long_only clone (src/cli/ioctl/ioctl-getopt.ts)
 * and the C number scanners (src/cli/ioctl/ioctl-scan.ts). Properties: option parsing ends
 * within argc steps, keeps optind in [1, argc], permutes argv without losing or
 * inventing an element, reports each error with exactly one stderr line, and returns
 * only table values or '?'; an option with a required argument gets one; the scanners
 * agree with an independent reading of plain decimal, octal and hex numbers and the
 * --tcp splitting keeps a port within 16 bits.
 */
import { GetoptLongOnly, IOCTL_OPTS } from '../../../src/cli/ioctl/ioctl-getopt.js';
import { parseInfoFlags, parseTcp, scanU32, scanU64 } from '../../../src/cli/ioctl/ioctl-scan.js';
import { assert, Input } from './props.js';

/** swtpm_ioctl's table, the one tswtpm_ioctl parses with. */
const OPTS = IOCTL_OPTS;
const VALS = new Set(OPTS.map((o) => o.val));
const U64_MAX = (1n << 64n) - 1n;

function checkGetopt(argv: string[], posix: boolean): void {
  const before = [...argv].sort();
  const errs: string[] = [];
  const env = posix ? { POSIXLY_CORRECT: '1' } : {};
  const g = new GetoptLongOnly(argv, OPTS, (l) => errs.push(l), env);
  let steps = 0;
  for (let c = g.next(); c !== -1; c = g.next()) {
    assert.ok(++steps <= argv.length, 'getopt does not end');
    assert.ok(g.optind >= 1 && g.optind <= argv.length, `optind ${g.optind}`);
    if (c === '?') {
      assert.equal(errs.length, 1, 'an error without exactly one message');
      assert.ok(errs[0]!.endsWith('\n'));
      errs.length = 0;
      continue;
    }
    assert.equal(errs.length, 0, 'a message without an error');
    assert.ok(VALS.has(c), `returned ${c}`);
    const opt = OPTS.find((o) => o.val === c)!;
    assert.equal(g.optarg !== undefined, opt.hasArg, `optarg for ${opt.name}`);
  }
  assert.ok(g.optind >= 1 && g.optind <= argv.length, `final optind ${g.optind}`);
  assert.deepEqual([...argv].sort(), before, 'argv permutation lost elements');
}

/** Plain numbers (no sign, no spaces) read independently of the scanner. */
function checkScan(s: string): void {
  const u32 = scanU32(s);
  const u64 = scanU64(s);
  assert.equal(u32 === undefined, u64 === undefined);
  if (u64 !== undefined) {
    assert.ok(u64 >= 0n && u64 <= U64_MAX);
    assert.equal(u32, Number(u64 & 0xffffffffn));
  }
  const dec = /^\d+/.exec(s);
  if (dec !== null) {
    const v = BigInt(dec[0]);
    assert.equal(u64, v > U64_MAX ? U64_MAX : v);
  }
  const flags = parseInfoFlags(s);
  if (flags !== undefined) assert.ok(flags >= 0n && flags <= U64_MAX);
  const lit = /^(0[xX][0-9a-fA-F]+|[1-9]\d*|0[0-7]*)$/.exec(s);
  if (lit !== null) {
    const v = BigInt(
      s.startsWith('0') && !/^0[xX]/.test(s) && s.length > 1 ? `0o${s.slice(1)}` : s,
    );
    assert.equal(flags, v > U64_MAX ? undefined : v, `info flags ${s}`);
  }
  if (s === '') assert.equal(flags, 0n);
  const tcp = parseTcp(s);
  if (!('error' in tcp))
    assert.ok((tcp.port >= 0 && tcp.port <= 0xffff && tcp.host.length > 0) || s === '');
}

export function fuzz(data: Buffer): void {
  const inp = new Input(data);
  const posix = (inp.u8() & 1) === 1;
  const argv = ['tswtpm_ioctl'];
  while (inp.left > 0 && argv.length < 12) argv.push(inp.str());
  checkGetopt(argv, posix);
  for (const a of argv.slice(1)) checkScan(a);
}
