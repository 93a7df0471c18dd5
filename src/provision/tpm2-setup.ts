/**
 * The whole TPM 2 manufacturing sequence of swtpm_setup 0.10 (provisioning.md §2.1):
 * active profile, SPK, RSA EK pass (EK, template NV, certificates), ECC EK pass, PCR
 * banks, TPM2_Shutdown. Startup was done by the emulator (`not-need-init,startup-clear`);
 * stopping it (CMD_SHUTDOWN) is the caller's.
 */
import { chmodSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CertMaker, CertType, TpmLink } from './link.js';
import { parseSpecInfo } from './spec-info.js';
import {
  TPM_RH_ENDORSEMENT,
  TPM_RH_OWNER,
  createPrimary,
  evictControl,
  flushContext,
  shutdown,
} from './tpm2-cmds.js';
import { PLATFORM_CERT_INDEX, send, writeNvArea } from './tpm2-nv.js';
import { activatePcrBanks } from './tpm2-pcr.js';
import {
  type EkProfile,
  SPK_HANDLE,
  eccEk,
  ekParamFromResponse,
  rsaEk,
  spkTemplate,
} from './tpm2-templates.js';

export interface Tpm2SetupOptions {
  readonly createSpk: boolean;
  /** --ecc: the SPK is ECC P-384 (the EKs are always RSA and ECC). */
  readonly ecc: boolean;
  readonly createEk: boolean;
  readonly createEkCert: boolean;
  readonly createPlatformCert: boolean;
  readonly allowSigning: boolean;
  readonly decryption: boolean;
  readonly lockNvram: boolean;
  readonly rsaKeySize: 2048 | 3072;
  /** Comma-separated bank names, or `-` to leave the banks alone. */
  readonly pcrBanks: string;
  /** Only the PCR banks and Shutdown (no profile query, no keys). */
  readonly reconfigure: boolean;
  readonly writeEkCertFilesDir?: string;
  readonly vmid?: string;
}

/** Where the steps' lines go: informational lines and error lines (stdout/stderr). */
export interface SetupLog {
  info(line: string): void;
  error(line: string): void;
}

/** A failure whose message is swtpm_setup's error line. */
export class SetupError extends Error {}

/**
 * Runs the sequence on `link`. Throws SetupError (its message already logged) on the
 * first failure.
 *
 * @example
 * await setupTpm2(link, { ...opts, createEk: true, pcrBanks: 'sha256' }, certs, log);
 */
export async function setupTpm2(
  link: TpmLink,
  opts: Tpm2SetupOptions,
  certs: CertMaker | undefined,
  log: SetupLog,
): Promise<void> {
  try {
    if (!opts.reconfigure) await logActiveProfile(link, log);
    if (opts.createSpk) await createSpk(link, opts, log);
    const wantEk = opts.createEk || opts.createEkCert || opts.createPlatformCert;
    if (wantEk && !opts.reconfigure) {
      const flags = { allowSigning: opts.allowSigning, decryption: opts.decryption };
      await ekPass(link, rsaEk(opts.rsaKeySize, flags), opts, certs, log, true);
      await ekPass(link, eccEk(flags), opts, certs, log, false);
    }
    if (opts.pcrBanks !== '-') await activatePcrBanks(link, opts.pcrBanks, log.info);
    await send(link, 'TPM2_Shutdown', shutdown());
  } catch (err) {
    if (err instanceof SetupError) throw err;
    log.error((err as Error).message);
    throw new SetupError((err as Error).message);
  }
}

/**
 * CMD_GET_INFO(0x20): `Active profile: {…}` from swtpm 0.10. An emulator without
 * profiles answers `{}`; 0.10.2 would fail there, we skip the line (§7).
 */
async function logActiveProfile(link: TpmLink, log: SetupLog): Promise<void> {
  const json = await link.getInfo(0x20);
  const colon = json.indexOf(':');
  const end = json.lastIndexOf('}');
  if (colon < 0 || end < colon) return;
  log.info(`Active profile: ${json.slice(colon + 1, end)}`);
}

async function createSpk(link: TpmLink, opts: Tpm2SetupOptions, log: SetupLog): Promise<void> {
  const name = opts.ecc ? 'TPM2_CreatePrimary(ECC)' : 'TPM2_CreatePrimary(RSA)';
  const rsp = await send(
    link,
    name,
    createPrimary(TPM_RH_OWNER, spkTemplate(opts.ecc, opts.rsaKeySize)),
  );
  const handle = rsp.readUInt32BE(10);
  await send(link, 'TPM2_EvictControl', evictControl(handle, SPK_HANDLE));
  await send(link, 'TPM2_FlushContext', flushContext(handle));
  log.info(`Successfully created storage primary key with handle 0x${SPK_HANDLE.toString(16)}.`);
}

/** One EK: create and persist it, store its template (signing EKs), then its certificates. */
async function ekPass(
  link: TpmLink,
  ek: EkProfile,
  opts: Tpm2SetupOptions,
  certs: CertMaker | undefined,
  log: SetupLog,
  rsa: boolean,
): Promise<void> {
  const name = rsa ? 'TPM2_CreatePrimary(RSA)' : 'TPM2_CreatePrimary(ECC)';
  let rsp: Buffer;
  try {
    rsp = await send(link, name, createPrimary(TPM_RH_ENDORSEMENT, ek.template));
    // The transient EK stays loaded, as swtpm_setup leaves it (no FlushContext).
    await send(link, 'TPM2_EvictControl', evictControl(rsp.readUInt32BE(10), ek.persistentHandle));
  } catch (err) {
    log.error((err as Error).message);
    throw new SetupError('create_ek failed: 0x1');
  }
  const hex = ek.persistentHandle.toString(16);
  log.info(`Successfully created ${ek.logName} EK with handle 0x${hex}.`);
  const ekParam = ekParamFromResponse(ek, rsp);
  const nv = { lock: opts.lockNvram, info: log.info, error: log.error };
  if (opts.allowSigning) {
    const item = {
      index: ek.templateIndex,
      description: `${ek.logName} EK template`,
      what: 'EK template',
    };
    await writeNvArea(link, item, ek.template, nv.lock, nv.info, nv.error);
  }
  const types: CertType[] = [];
  if (opts.createEkCert) types.push('ek');
  if (opts.createPlatformCert && rsa) types.push('platform');
  if (types.length === 0) return;
  if (certs === undefined) throw new SetupError('No create_certs_tool to make certificates.');
  const spec = parseSpecInfo(await link.getInfo(3));
  // Both certificates are made before either is written, as swtpm_setup does.
  const made: Array<[CertType, Uint8Array]> = [];
  for (const type of types) {
    const req = {
      type,
      ekParam,
      tpm2: true,
      spec,
      ...(opts.vmid !== undefined ? { vmid: opts.vmid } : {}),
    };
    try {
      made.push([type, await certs(req)]);
    } catch (err) {
      log.error((err as Error).message);
      throw new SetupError((err as Error).message);
    }
  }
  for (const [type, der] of made) {
    const item =
      type === 'ek'
        ? {
            index: ek.certIndex,
            description: `${ek.logName} EK certificate`,
            what: 'EK certificate',
          }
        : {
            index: PLATFORM_CERT_INDEX,
            description: 'platform certificate',
            what: 'platform certificate',
          };
    await writeNvArea(link, item, der, nv.lock, nv.info, nv.error);
    if (type === 'ek' && opts.writeEkCertFilesDir !== undefined) {
      writeCertFile(opts.writeEkCertFilesDir, `ek-${ek.kind}.crt`, der);
    }
  }
}

/** `<dir>/ek-<desc>.crt`, replaced atomically, mode 0640 (§1.14). */
export function writeCertFile(dir: string, name: string, data: Uint8Array): void {
  const target = join(dir, name);
  const tmp = `${target}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o640 });
  chmodSync(tmp, 0o640);
  renameSync(tmp, target);
}
