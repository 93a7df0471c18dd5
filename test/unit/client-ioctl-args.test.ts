/**
 * tswtpm_ioctl argument handling: the getopt_long_only clone (expected outputs observed
 * from glibc through swtpm_ioctl 0.7.1) and the C number parsing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GetoptLongOnly, type LongOpt } from '../../src/cli/ioctl/ioctl-getopt.js';
import { parseInfoFlags, parseTcp, scanU32 } from '../../src/cli/ioctl/ioctl-scan.js';

const OPTS: LongOpt[] = [
  { name: 'tpm-device', hasArg: true, val: 'D' },
  { name: 'tcp', hasArg: true, val: 'T' },
  { name: 'c', hasArg: false, val: 'c' },
  { name: 'stop', hasArg: false, val: 't' },
  { name: 's', hasArg: false, val: 's' },
  { name: 'l', hasArg: true, val: 'l' },
  { name: 'save', hasArg: true, val: 'S' },
];

function all(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const args = ['prog', ...argv];
  const errs: string[] = [];
  const g = new GetoptLongOnly(args, OPTS, (s) => errs.push(s), env);
  const got: string[] = [];
  for (let c = g.next(); c !== -1; c = g.next())
    got.push(`${c}${g.optarg === undefined ? '' : `=${g.optarg}`}`);
  return { got, errs, rest: args.slice(g.optind) };
}

describe('getopt_long_only clone', () => {
  it('single and double dashes, exact beats prefix, prefixes, = arguments', () => {
    assert.deepEqual(all(['-c', '--s', '-st', '-l', '3', '--tcp=:1', '-sa', 'x']).got, [
      'c',
      's',
      't',
      'l=3',
      'T=:1',
      'S=x',
    ]);
  });

  it('reports like glibc and goes on', () => {
    const r = all(['-x', '-t', '-c=1', '-l']);
    assert.deepEqual(r.errs, [
      "prog: unrecognized option '-x'\n",
      "prog: option '-t' is ambiguous; possibilities: '-tpm-device' '-tcp'\n",
      "prog: option '-c' doesn't allow an argument\n",
      "prog: option '-l' requires an argument\n",
    ]);
    assert.deepEqual(r.got, ['?', '?', '?', '?']);
  });

  it('permutes non-options to the end, stops at --', () => {
    assert.deepEqual(all(['dev', '-c', 'other']).rest, ['dev', 'other']);
    assert.deepEqual(all(['-c', '--', '-s']).rest, ['-s']);
    assert.deepEqual(all(['-l', '-1']).got, ['l=-1']); // a required argument may start with '-'
    assert.deepEqual(all(['dev', '-c'], { POSIXLY_CORRECT: '1' }).got, []);
  });
});

describe('C number parsing', () => {
  it('sscanf %u', () => {
    assert.equal(scanU32('3x'), 3);
    assert.equal(scanU32(' +3'), 3);
    assert.equal(scanU32('-1'), 0xffffffff);
    assert.equal(scanU32('4294967297'), 1);
    assert.equal(scanU32('99999999999999999999999'), 0xffffffff);
    assert.equal(scanU32('0x10'), 0);
    assert.equal(scanU32(''), undefined);
    assert.equal(scanU32('-'), undefined);
  });

  it('strtoull(…, 0) with an end check', () => {
    assert.equal(parseInfoFlags('0x3'), 3n);
    assert.equal(parseInfoFlags('010'), 8n);
    assert.equal(parseInfoFlags(''), 0n);
    assert.equal(parseInfoFlags('-1'), (1n << 64n) - 1n);
    for (const bad of ['3x', '08', '0x', '-', ' ', '1 ', '99999999999999999999']) {
      assert.equal(parseInfoFlags(bad), undefined, bad);
    }
  });

  it('--tcp [host]:[port] as swtpm_ioctl splits it', () => {
    assert.deepEqual(parseTcp(':'), { host: '127.0.0.1', port: 6546 });
    assert.deepEqual(parseTcp('localhost'), { host: 'localhost', port: 6546 });
    assert.deepEqual(parseTcp('::1'), { host: ':', port: 1 });
    assert.deepEqual(parseTcp(':-1'), { host: '127.0.0.1', port: 65535 });
    assert.deepEqual(parseTcp('h:'), { error: "Invalid port ''\n" });
    assert.deepEqual(parseTcp('127.0.0.1:70000'), {
      error: "Port '27.0.0.1:70000' outside valid range.\n",
    });
    assert.deepEqual(parseTcp(':2147483648'), { host: '127.0.0.1', port: 0 });
  });
});
