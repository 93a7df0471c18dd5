/**
 * What tswtpm_setup reads from outside: swtpm_setup.conf text (src/cli/setup/config.ts)
 * and TPM 2 responses (GetCapability(PCRS), CreatePrimary's public key). Properties: the
 * config parser never throws, and its values have no `#`, no line break and no
 * trailing whitespace; the response parsers refuse only with TpmResponseError, list at
 * most 20 banks, and return keys of exactly the template's size in lower-case hex.
 */
import { parseSetupConfig } from '../../../src/cli/setup/config.js';
import { TpmResponseError } from '../../../src/provision/tpm2-cmds.js';
import { parsePcrBanks } from '../../../src/provision/tpm2-pcr.js';
import { eccEk, ekParamFromResponse, rsaEk } from '../../../src/provision/tpm2-templates.js';
import { assert, Input, only } from './props.js';

const EKS = [
  rsaEk(2048, { allowSigning: false, decryption: false }),
  rsaEk(3072, { allowSigning: true, decryption: true }),
  eccEk({ allowSigning: false, decryption: false }),
];

export function fuzz(data: Buffer): void {
  const inp = new Input(data);
  const which = inp.u8();
  if (which % 3 === 0) {
    const cfg = parseSetupConfig(inp.rest().toString('latin1'), { X: 'x' });
    for (const v of Object.values(cfg)) {
      assert.ok(typeof v === 'string');
      assert.ok(!v.includes('#') && !v.includes('\n'), 'value with # or newline');
      assert.ok(v === v.replace(/\s+$/, ''), 'trailing whitespace');
    }
    return;
  }
  if (which % 3 === 1) {
    const banks = only('parsePcrBanks', () => parsePcrBanks(inp.rest()), TpmResponseError);
    if (banks !== undefined) assert.ok(banks.length <= 20);
    return;
  }
  const ek = EKS[inp.u8() % EKS.length]!;
  const p = only(
    'ekParamFromResponse',
    () => ekParamFromResponse(ek, inp.rest()),
    TpmResponseError,
  );
  if (p === undefined) return;
  if (ek.kind === 'secp384r1') assert.match(p, /^x=[0-9a-f]{96},y=[0-9a-f]{96},id=secp384r1$/);
  else assert.match(p, ek.kind === 'rsa2048' ? /^[0-9a-f]{512}$/ : /^[0-9a-f]{768}$/);
}
