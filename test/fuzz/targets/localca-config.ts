/**
 * What tswtpm_localca reads from outside: swtpm-localca.conf lines, swtpm-localca.options
 * words, the certserial file, `--ek` and `--vmid` (src/provision/certs/). Properties: a
 * config value never holds `#`, `\n` or trailing whitespace; option words are never empty and
 * hold no space or newline; a serial is undefined or non-negative; `--ek` is refused only
 * with EkParamError; any `--vmid` gives a one-RDN subject that encodes without error.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { configLines, configValue, optionWords } from '../../../src/provision/certs/config.js';
import { subjectName } from '../../../src/provision/certs/dn.js';
import { vmidSubject } from '../../../src/provision/certs/issue.js';
import { parseSerial } from '../../../src/provision/certs/localca.js';
import { EkParamError, ekPublicKey } from '../../../src/provision/certs/pubkey.js';
import { assert, Input, only } from './props.js';

export function fuzz(data: Buffer): void {
  const inp = new Input(data);
  const key = inp.str();
  const ek = inp.str();
  const vmid = inp.str();
  const text = inp.rest().toString('latin1');
  const v = configValue(configLines(text), key, {});
  if (v !== undefined) {
    assert.ok(!v.includes('#') && !v.includes('\n'), 'value with # or newline');
    assert.equal(v, v.replace(/\s+$/, ''), 'trailing whitespace');
  }
  for (const w of optionWords(text)) assert.ok(w !== '' && !/[ \n]/.test(w), `word ${w}`);
  const s = parseSerial(text);
  assert.ok(s === undefined || s >= 0n);
  only('ekPublicKey', () => ekPublicKey(ek), EkParamError);
  const subject = vmidSubject(vmid);
  assert.ok(!subject.slice(3).includes(','), 'comma in subject');
  const name = subjectName(subject);
  assert.equal(name.length, 1);
  AsnConvert.serialize(name);
}
