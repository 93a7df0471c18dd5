/**
 * The TPM 1.2 steps of swtpm_setup (provisioning.md §2.5): physical presence, enable and
 * activate, the EK, ownership, the EK and platform certificates in NV, and the NV lock.
 * Same command bytes, same order, same log lines as swtpm_setup 0.7.1 – 0.10.2.
 */
import { chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CertMaker, CertType, TpmLink } from './link.js';
import { parseSpecInfo } from './spec-info.js';
import {
  DEFAULT_OWNER_PASSWORD,
  DEFAULT_SRK_PASSWORD,
  TAKE_OWNERSHIP_NONCE_ODD,
  encryptForEk,
  oiapAuth,
  passwordDigest,
} from './tpm12-auth.js';
import {
  EK_CERT_NV_INDEX,
  PLATFORM_CERT_NV_INDEX,
  TPM_NV_INDEX_LOCK,
  TPM_NV_PER_OWNERREAD,
  TPM_NV_PER_OWNERWRITE,
  TPM_PHYSICAL_PRESENCE_CMD_ENABLE,
  TPM_PHYSICAL_PRESENCE_PRESENT,
  createEndorsementKeyPair,
  finishAuth1,
  nvDefineSpace,
  nvWriteValue,
  oiap,
  physicalEnable,
  physicalSetDeactivated,
  takeOwnershipBody,
  tscPhysicalPresence,
} from './tpm12-commands.js';

/** What to do, as swtpm_setup's TPM 1.2 flags say it. Every field is optional (off). */
export interface Tpm12SetupOptions {
  /** `--createek`: TPM_CreateEndorsementKeyPair. Implied by the next three. */
  readonly createEk?: boolean;
  /** `--take-ownership`: TPM_OIAP + TPM_TakeOwnership with the secrets below. */
  readonly takeOwnership?: boolean;
  /** `--ownerpass`: owner password (its SHA-1 is the secret); default "ooo". */
  readonly ownerPassword?: string;
  /** `--owner-well-known`: without `ownerPassword`, the secret is SHA-1 of 20 zero bytes. */
  readonly wellKnownOwner?: boolean;
  /** `--srkpass`: SRK password; default "sss". */
  readonly srkPassword?: string;
  /** `--srk-well-known`: without `srkPassword`, SHA-1 of 20 zero bytes. */
  readonly wellKnownSrk?: boolean;
  /** `--create-ek-cert`: EK certificate from `certs` into NV index 0x1000f000. */
  readonly createEkCert?: boolean;
  /**
   * `--create-platform-cert`: platform certificate into NV index 0x1000f002. As in
   * swtpm_setup, only made together with `createEkCert` (it implies only the EK).
   */
  readonly createPlatformCert?: boolean;
  /** `--lock-nvram`: TPM_NV_DefineSpace(TPM_NV_INDEX_LOCK) at the end (also without an EK). */
  readonly lockNvram?: boolean;
  /**
   * `--write-ek-cert-files <dir>`: also store the EK certificate, without its 7-byte
   * TCG header, as `<dir>/ek-rsa2048.crt` (mode 0640).
   */
  readonly writeEkCertFilesDir?: string;
  /** `--vmid`: passed on to the certificate maker. */
  readonly vmid?: string;
}

/** A failed step; `message` is swtpm_setup's error line (without the newline). */
export class Tpm12SetupError extends Error {
  readonly code = 'ERR_TPM12_SETUP';
  constructor(message: string) {
    super(message);
    this.name = 'Tpm12SetupError';
  }
}

const OWNER_NV_ATTRS = TPM_NV_PER_OWNERREAD | TPM_NV_PER_OWNERWRITE;

/**
 * Sends one command; a transport failure or a non-zero result becomes swtpm_setup's
 * `<name> failed: 0x<rc>` (or receive) error. Resolves with the response.
 */
async function send(link: TpmLink, command: Uint8Array, name: string): Promise<Buffer> {
  let rsp: Buffer;
  try {
    rsp = Buffer.from(await link.transmit(command));
  } catch (e) {
    throw new Tpm12SetupError(
      `Could not receive response to ${name} from swtpm: ${(e as Error).message}`,
    );
  }
  if (rsp.length < 10)
    throw new Tpm12SetupError(`Response for ${name} has only ${rsp.length} bytes.`);
  const rc = rsp.readUInt32BE(6);
  if (rc !== 0) throw new Tpm12SetupError(`${name} failed: 0x${rc.toString(16)}`);
  return rsp;
}

/** The 2048-bit EK modulus from a CreateEndorsementKeyPair response (u32 256 at 34, data at 38). */
async function createEk(link: TpmLink): Promise<Buffer> {
  const rsp = await send(link, createEndorsementKeyPair(), 'TPM_CreateEndorsementKeyPair');
  const tooShort = 'Response from TPM_CreateEndorsementKeyPair is too short!';
  if (rsp.length < 38) throw new Tpm12SetupError(tooShort);
  if (rsp.readUInt32BE(34) !== 256) throw new Tpm12SetupError('Offset to EK Public key is wrong.');
  if (rsp.length < 38 + 256) throw new Tpm12SetupError(tooShort);
  return rsp.subarray(38, 38 + 256);
}

async function takeOwnership(link: TpmLink, opts: Tpm12SetupOptions, ek: Buffer): Promise<void> {
  const owner = passwordDigest(
    opts.ownerPassword,
    opts.wellKnownOwner ?? false,
    DEFAULT_OWNER_PASSWORD,
  );
  const srk = passwordDigest(opts.srkPassword, opts.wellKnownSrk ?? false, DEFAULT_SRK_PASSWORD);
  // swtpm_setup encrypts both secrets before it opens the session.
  const body = takeOwnershipBody(encryptForEk(ek, owner), encryptForEk(ek, srk));
  const rsp = await send(link, oiap(), 'TPM_OIAP');
  if (rsp.length < 34) throw new Tpm12SetupError('Response from TPM_OIAP is too short!');
  const authHandle = rsp.readUInt32BE(10);
  const nonceEven = rsp.subarray(14, 34);
  const nonceOdd = TAKE_OWNERSHIP_NONCE_ODD;
  // The HMAC covers the request as it is before the trailer, size field still unset.
  const auth = oiapAuth(owner, body, nonceEven, nonceOdd, 0);
  await send(link, finishAuth1(body, authHandle, nonceOdd, 0, auth), 'TPM_TakeOwnership');
}

/** DefineSpace + one WriteValue of the whole file (0.7.1 names the write "TPM_NV_DefineSpace" too). */
async function writeCert(link: TpmLink, index: number, data: Uint8Array): Promise<void> {
  await send(link, nvDefineSpace(index, OWNER_NV_ATTRS, data.length), 'TPM_NV_DefineSpace');
  await send(link, nvWriteValue(index, data), 'TPM_NV_DefineSpace');
}

/** `<dir>/ek-rsa2048.crt` without the TCG header (when the file has at least 8 bytes). */
function keepEkCertFile(dir: string, content: Uint8Array): void {
  const der = content.length >= 8 ? content.subarray(7) : content;
  const file = join(dir, 'ek-rsa2048.crt');
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, der, { mode: 0o600 });
    chmodSync(tmp, 0o640); // S_IRUSR | S_IWUSR | S_IRGRP whatever the umask
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Tpm12SetupError(`Failed to create file '${file}': ${(e as Error).message}`);
  }
}

/** CMD_GET_INFO(3) for the certificate tool; failures worded as swtpm_setup's. */
async function specInfo(link: TpmLink) {
  let json: string;
  try {
    json = await link.getInfo(3);
  } catch {
    throw new Tpm12SetupError('Could not get the TPM spec and attribute parameters.');
  }
  try {
    return parseSpecInfo(json);
  } catch (e) {
    throw new Tpm12SetupError((e as Error).message);
  }
}

async function createCerts(
  link: TpmLink,
  opts: Tpm12SetupOptions,
  certs: CertMaker | undefined,
  ek: Buffer,
  log: (line: string) => void,
): Promise<void> {
  // Without a create_certs_tool swtpm_setup fails when it reads the missing ek.cert.
  if (certs === undefined) throw new Tpm12SetupError('No create_certs_tool is configured.');
  const types: CertType[] = opts.createPlatformCert ? ['ek', 'platform'] : ['ek'];
  const spec = await specInfo(link);
  const ekParam = ek.toString('hex');
  const made: Uint8Array[] = [];
  // All certificates first, as swtpm_setup runs the tool for each type before any NV write.
  for (const type of types) {
    const req = { type, ekParam, tpm2: false, spec };
    made.push(await certs(opts.vmid === undefined ? req : { ...req, vmid: opts.vmid }));
  }
  const [ekCert, platformCert] = made;
  await writeCert(link, EK_CERT_NV_INDEX, ekCert!);
  log('Successfully created NVRAM area for EK certificate.');
  if (opts.writeEkCertFilesDir !== undefined) keepEkCertFile(opts.writeEkCertFilesDir, ekCert!);
  if (platformCert === undefined) return;
  await writeCert(link, PLATFORM_CERT_NV_INDEX, platformCert);
  log('Successfully created NVRAM area for Platform certificate.');
}

/**
 * Runs the TPM 1.2 manufacturing steps on a started TPM (swtpm issues TPM_Startup), in
 * swtpm_setup's order, logging its success lines through `log`. Rejects with a
 * {@link Tpm12SetupError} (swtpm_setup's error line) on the first failed step, or with
 * the CertMaker's error. Physical presence stays asserted; no TPM_SaveState is sent.
 *
 * @example
 * await setupTpm12(link, { createEk: true, takeOwnership: true, lockNvram: true }, undefined,
 *   (line) => console.log(line));
 */
export async function setupTpm12(
  link: TpmLink,
  opts: Tpm12SetupOptions,
  certs: CertMaker | undefined,
  log: (line: string) => void,
): Promise<void> {
  await send(link, tscPhysicalPresence(TPM_PHYSICAL_PRESENCE_CMD_ENABLE), 'TSC_PhysicalPresence');
  await send(link, tscPhysicalPresence(TPM_PHYSICAL_PRESENCE_PRESENT), 'TSC_PhysicalPresence');
  await send(link, physicalEnable(), 'TPM_PhysicalEnable');
  // swtpm_setup names this command TSC_PhysicalSetDeactivated in its error line.
  await send(link, physicalSetDeactivated(0), 'TSC_PhysicalSetDeactivated');
  const wantEkCert = opts.createEkCert ?? false;
  const wantEk = opts.createEk || opts.takeOwnership || wantEkCert || opts.createPlatformCert;
  if (wantEk) {
    const ek = await createEk(link);
    log('Successfully created EK.');
    if (opts.takeOwnership) {
      await takeOwnership(link, opts, ek);
      log('Successfully took ownership of the TPM.');
    }
    if (wantEkCert) await createCerts(link, opts, certs, ek, log);
  }
  if (opts.lockNvram) {
    await send(link, nvDefineSpace(TPM_NV_INDEX_LOCK, 0, 0), 'TPM_NV_DefineSpace');
    log('Successfully locked NVRAM access.');
  }
}
