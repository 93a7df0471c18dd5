// Test-side helpers around the TPM command builders of src/protocol/tpm/commands.ts
// (whose bytes test/unit/tpm-commands.test.ts pins to golden hex): expected values,
// result codes the tests look for, and hex for readable assertion messages.
import { createHash, randomBytes } from 'node:crypto';
import { createPrimaryRsa2 } from '../../src/protocol/tpm/commands.js';

/** Result codes the tests look for. */
export const RC = {
  SUCCESS: 0,
  TPM_FAIL: 0x09,
  TPM_INVALID_POSTINIT: 0x26,
  TPM_BAD_LOCALITY: 0x3d,
  TPM_RC_INSUFFICIENT: 0x9a,
  TPM_RC_INITIALIZE: 0x100,
  TPM_RC_FAILURE: 0x101,
  TPM_RC_LOCALITY: 0x107,
} as const;

export const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/** PCR value after extending `digests` in turn into a zero SHA-256 PCR, as hex. */
export function extendChain(...digests: Uint8Array[]): string {
  let pcr = Buffer.alloc(32);
  for (const d of digests) pcr = createHash('sha256').update(pcr).update(d).digest();
  return pcr.toString('hex');
}

/** The value a SHA-256 PCR holds after one extend of a reset (zero) PCR. */
export const extendedOnce = (digest: Uint8Array): Buffer => Buffer.from(extendChain(digest), 'hex');

/** The SHA-256 PCR value of a recorded TPM2_PCR_Read response (last 32 bytes), as hex. */
export function pcrValueHex(rsp: Uint8Array): string {
  return Buffer.from(rsp.subarray(rsp.length - 32)).toString('hex');
}

/**
 * TPM2_CreatePrimary of an RSA-`bits` storage key with a random `unique`, so libtpms
 * cannot return a cached/derived key quickly (slow commands for cancel/diff tests).
 */
export const createPrimaryRsaRandom = (bits: number): Buffer =>
  createPrimaryRsa2(bits, randomBytes(bits / 8));

/** Hex without spaces, for readable assertion messages. */
export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
