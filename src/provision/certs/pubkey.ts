/**
 * The EK public key from the plug-in's `--ek` parameter (provisioning.md §3.2, §4.1): an RSA
 * modulus in hex (exponent 65537), or `x=<hex>,y=<hex>[,id=<curve>]` anywhere in the string.
 * The key becomes a node:crypto KeyObject, so an EC point that is not on its curve is refused
 * here (swtpm_cert does not check; see docs/compat.md).
 */
import { type KeyObject, createPublicKey } from 'node:crypto';

/** swtpm_cert's `--ecc-curveid` names and their JWK curve and coordinate size. */
const CURVES: Readonly<Record<string, { crv: string; size: number }>> = {
  secp256r1: { crv: 'P-256', size: 32 },
  secp384r1: { crv: 'P-384', size: 48 },
  secp521r1: { crv: 'P-521', size: 66 },
};

/** The EC form swtpm_localca recognises (unanchored; an empty coordinate makes it a modulus). */
const ECC_PARAM = /x=([0-9a-fA-F]+),y=([0-9a-fA-F]+)(,id=([^,]+))?/;

export type EkKey = { kind: 'rsa'; key: KeyObject } | { kind: 'ec'; key: KeyObject };

/**
 * A key parameter swtpm_cert would refuse. `stderr` is swtpm_cert's text for it, exactly
 * (some of its messages end with a newline, some do not).
 */
export class EkParamError extends Error {
  readonly code = 'EK_PARAM' as const;
  readonly stderr: string;
  constructor(stderr: string) {
    super(stderr.trimEnd());
    this.stderr = stderr;
  }
}

/** swtpm_cert's hex decoding: odd length first, then illegal characters, then emptiness. */
function hexBytes(hex: string, what: string): Buffer {
  if (hex.length % 2 !== 0)
    throw new EkParamError(
      `Got an odd number of hex digits (${hex.length}).\n    hex digits: ${hex}\n`,
    );
  const bad = /[^0-9a-fA-F]/.exec(hex);
  if (bad !== null) throw new EkParamError(`Illegal hex character '${bad[0]}'.`);
  if (hex.length === 0)
    throw new EkParamError(`Could not set ${what} : The scanning of a large integer has failed.\n`);
  return Buffer.from(hex, 'hex');
}

const b64u = (b: Buffer) => b.toString('base64url');

function leftPad(b: Buffer, size: number): Buffer {
  const n = b.subarray(Math.max(0, b.length - size));
  return n.length === size ? n : Buffer.concat([Buffer.alloc(size - n.length), n]);
}

/**
 * Parses `--ek` into a public key.
 *
 * @example ekPublicKey('x=…,y=…,id=secp384r1').kind === 'ec'
 */
export function ekPublicKey(param: string): EkKey {
  const m = ECC_PARAM.exec(param);
  if (m !== null) {
    const curveId = m[4] ?? 'secp256r1';
    const curve = CURVES[curveId];
    if (curve === undefined) throw new EkParamError(`Unsupported ECC curve id: ${curveId}\n`);
    const x = leftPad(hexBytes(m[1]!, 'ECC x coordinate'), curve.size);
    const y = leftPad(hexBytes(m[2]!, 'ECC y coordinate'), curve.size);
    try {
      const jwk = { kty: 'EC', crv: curve.crv, x: b64u(x), y: b64u(y) };
      return { kind: 'ec', key: createPublicKey({ key: jwk, format: 'jwk' }) };
    } catch (e) {
      throw new EkParamError(`Could not import the ECC public key: ${(e as Error).message}\n`);
    }
  }
  const n = hexBytes(param, 'modulus and exponent on RSA key');
  const jwk = { kty: 'RSA', n: b64u(n), e: 'AQAB' };
  try {
    return { kind: 'rsa', key: createPublicKey({ key: jwk, format: 'jwk' }) };
  } catch (e) {
    throw new EkParamError(`Could not import the RSA public key: ${(e as Error).message}\n`);
  }
}
