/**
 * swtpm-style `key=value,...` sub-options (src/cli/common/subopts.ts). Properties:
 * splitSubopts never throws, never yields an empty token, and for a value without
 * braces equals a plain split at commas (name up to the first '='); parseSubopts
 * refuses only with CliError, and what it returns has the spec's types (ints are
 * integers, modes are within 0..0o777, bools are booleans).
 */
import {
  CliError,
  type SubKind,
  parseSubopts,
  splitSubopts,
} from '../../../src/cli/common/subopts.js';
import { assert, Input, only } from './props.js';

const SPEC: Readonly<Record<string, SubKind>> = {
  dir: 'string',
  file: 'string',
  port: 'int',
  fd: 'int',
  mode: 'mode',
  disconnect: 'bool',
  // A name that is a number stays off /etc/passwd lookups for most inputs.
  uid: 'uid',
  gid: 'gid',
};

export function fuzz(data: Buffer): void {
  const inp = new Input(data);
  const value = inp.rest().toString('utf8');
  const pairs = splitSubopts(value);
  for (const [name, v] of pairs) {
    assert.ok(name !== '' || v !== true, 'empty token');
    if (v !== true) assert.ok(!name.includes('='), 'name contains =');
  }
  if (!value.includes('{') && !value.includes('}')) {
    const ref = value
      .split(',')
      .filter((t) => t !== '')
      .map((t) => {
        const eq = t.indexOf('=');
        return eq < 0 ? [t, true] : [t.slice(0, eq), t.slice(eq + 1)];
      });
    assert.deepEqual(pairs, ref);
  }
  const out = only('parseSubopts', () => parseSubopts('fuzz', value, SPEC), CliError);
  if (out === undefined) return;
  for (const [k, v] of Object.entries(out)) {
    const kind = SPEC[k];
    assert.ok(kind !== undefined, `unknown option ${k} accepted`);
    if (kind === 'int' || kind === 'uid' || kind === 'gid') assert.ok(Number.isInteger(v), k);
    if (kind === 'mode')
      assert.ok(Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0o777);
    if (kind === 'bool') assert.equal(typeof v, 'boolean');
    if (kind === 'string') assert.equal(typeof v, 'string');
  }
}
