/**
 * One swtpm_localca run without the command line (provisioning.md §4.4): options file,
 * config, CA directory, serial, then the certificate that swtpm_localca would have
 * swtpm_cert make (§4.7), built in process.
 */
import 'reflect-metadata';
import { type KeyObject, createPrivateKey } from 'node:crypto';
import { constants, accessSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { SYSCONFDIR, optionWords, userConfigDir } from './config.js';
import {
  type InfoLog,
  type LocalCaConfig,
  LocalCaError,
  currentUser,
  ensureCa,
  nextSerial,
  openLocalCa,
} from './localca.js';
import { type CaSigner, type TpmSpec, buildCertificate, withTpm12Header } from './profile.js';
import { EkParamError, ekPublicKey } from './pubkey.js';
import type { PlatformAttrs } from './tcg-asn.js';

/** What swtpm_localca receives on its command line (§4.1). */
export interface LocalCaRequest {
  /** `--type`: `ek` or `platform` (anything else fails as in swtpm_localca). */
  readonly type: string;
  readonly ekParam: string;
  readonly vmid?: string;
  readonly tpm2: boolean;
  readonly specFamily?: string;
  readonly specLevel?: string;
  readonly specRevision?: string;
  readonly tpmManufacturer?: string;
  readonly tpmModel?: string;
  readonly tpmVersion?: string;
  readonly allowSigning?: boolean;
  readonly decryption?: boolean;
  /** `--configfile`; default: the user's config dir, else /etc. */
  readonly configFile?: string;
  /** `--optsfile`; default as for the config file. */
  readonly optsFile?: string;
}

/** The certificate, ready for NV (TPM 1.2: with its 7-byte header). */
export interface IssuedCert {
  readonly bytes: Uint8Array;
  readonly serial: bigint;
  /** `EK` or `platform`, as swtpm_localca's messages name it. */
  readonly what: 'EK' | 'platform';
  /** The plug-in's output file name in `--dir`. */
  readonly file: 'ek.cert' | 'platform.cert';
}

/** `<user config dir>/<name>` if readable, else `/etc/<name>` (each file on its own). */
export function defaultConfigFile(name: string, env: NodeJS.ProcessEnv): string {
  const user = join(userConfigDir(env), name);
  try {
    accessSync(user, constants.R_OK);
    return user;
  } catch {
    return join(SYSCONFDIR, name);
  }
}

/** swtpm_localca's `--vmid` → `CN=`: `+` not after `\` and every `,` become `_`. */
export const vmidSubject = (vmid: string | undefined): string =>
  `CN=${vmid === undefined ? 'unknown' : vmid.replace(/(^|[^\\])\+/g, '$1_').replace(/,/g, '_')}`;

/** The swtpm_cert options swtpm-localca.options may carry (getopt_long_only prefixes). */
const CERT_OPTS = ['platform-manufacturer', 'platform-model', 'platform-version'] as const;

function certOptions(words: readonly string[], file: string): Partial<Record<string, string>> {
  const out: Record<string, string> = {};
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith('-')) continue; // a stray word: swtpm_cert ignores it
    const name = w.replace(/^--?/, '').split('=')[0]!;
    const hits = CERT_OPTS.filter((o) => o === name || o.startsWith(name));
    const opt = CERT_OPTS.find((o) => o === name) ?? (hits.length === 1 ? hits[0] : undefined);
    if (opt === undefined)
      throw new LocalCaError(`Unsupported option '${w}' in options file ${file}.`);
    const eq = w.indexOf('=');
    out[opt] = eq >= 0 ? w.slice(eq + 1) : (words[++i] ?? '');
  }
  return out;
}

/**
 * swtpm_cert's strtol(v, NULL, 0) for the spec level and revision: leading whitespace, a
 * sign, `0x` hex or `0` octal or decimal, up to the first other character; no digits → 0.
 * Only a negative value is refused.
 */
export function specInt(v: string, what: string): number {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)?/.exec(v)!;
  const digits = m[2] ?? '0';
  const n = /^0[xX]/.test(digits)
    ? Number.parseInt(digits.slice(2), 16)
    : digits.startsWith('0')
      ? Number.parseInt(digits, 8)
      : Number(digits);
  if (m[1] === '-' && n !== 0) throw new Error(`${what} must pass a positive number.`);
  return n;
}

function spec(r: LocalCaRequest): TpmSpec | undefined {
  if (r.specFamily === undefined || r.specLevel === undefined || r.specRevision === undefined)
    return undefined;
  return {
    family: r.specFamily,
    level: specInt(r.specLevel, '--tpm-spec-level'),
    revision: specInt(r.specRevision, '--tpm-spec-revision'),
  };
}

/** GnuTLS's texts (as swtpm_cert prints them) for the usual reasons a key does not load. */
function keyImportReason(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  if (/bad decrypt/.test(m)) return 'Decryption has failed.';
  if (/interrupted or cancelled|passphrase|DECODER routines|unsupported/i.test(m))
    return 'The requested data were not available.';
  return m;
}

function loadSigner(cfg: LocalCaConfig): CaSigner {
  let key: KeyObject;
  try {
    const pem = readFileSync(cfg.signingkey, 'utf8');
    const pw = cfg.signingkeyPassword;
    key = createPrivateKey(pw !== undefined ? { key: pem, passphrase: pw } : pem);
  } catch (e) {
    throw new Error(`Could not import signing key : ${keyImportReason(e)}`);
  }
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(readFileSync(cfg.issuercert, 'utf8'));
  } catch (e) {
    throw new Error(
      `Could not import issuer certificate ${cfg.issuercert}: ${(e as Error).message}`,
    );
  }
  return { key, cert };
}

async function build(
  r: LocalCaRequest,
  cfg: LocalCaConfig,
  words: string[],
  optsFile: string,
  serial: bigint,
): Promise<Uint8Array> {
  const o = certOptions(words, optsFile);
  const { tpmManufacturer: m, tpmModel: mo, tpmVersion: v } = r;
  if (m === undefined || mo === undefined || v === undefined)
    throw new Error('--tpm-manufacturer and --tpm-model and --tpm version must all be provided');
  const pm = o['platform-manufacturer'];
  const pmo = o['platform-model'];
  const pv = o['platform-version'];
  const platform: PlatformAttrs | undefined =
    pm !== undefined && pmo !== undefined && pv !== undefined
      ? { manufacturer: pm, model: pmo, version: pv }
      : undefined;
  // swtpm_localca forwards the spec and the key-usage flags for `--type ek` only, and asks
  // swtpm_cert for a platform certificate for `platform` only: any other type (none, `EK`)
  // becomes an EK certificate without spec parameters, which swtpm_cert refuses.
  const isEk = r.type === 'ek';
  const s = isEk ? spec(r) : undefined;
  const der = await buildCertificate({
    type: r.type === 'platform' ? 'platform' : 'ek',
    tpm2: r.tpm2,
    ek: ekPublicKey(r.ekParam),
    tpm: { manufacturer: m, model: mo, version: v },
    ...(s !== undefined ? { spec: s } : {}),
    ...(platform !== undefined ? { platform } : {}),
    subject: vmidSubject(r.vmid),
    serial,
    days: -1,
    allowSigning: isEk && r.allowSigning === true,
    decryption: isEk && r.decryption === true,
    ca: loadSigner(cfg),
  });
  return r.tpm2 ? der : withTpm12Header(der);
}

/**
 * Runs swtpm_localca's steps and makes the certificate. Rejects with a LocalCaError whose
 * message is what swtpm_localca would print (one or more lines).
 *
 * @example const { bytes } = await issueLocalCaCert({ type: 'ek', ekParam, tpm2: true, ... }, process.env, console.log);
 */
export async function issueLocalCaCert(
  r: LocalCaRequest,
  env: NodeJS.ProcessEnv,
  log: InfoLog,
): Promise<IssuedCert> {
  const optsFile = r.optsFile ?? defaultConfigFile('swtpm-localca.options', env);
  const configFile = r.configFile ?? defaultConfigFile('swtpm-localca.conf', env);
  const user = currentUser();
  let words: string[];
  try {
    accessSync(optsFile, constants.R_OK);
    words = optionWords(readFileSync(optsFile, 'utf8'));
  } catch {
    throw new LocalCaError(`Need read rights on options file ${optsFile} for user ${user}.`);
  }
  const cfg = openLocalCa(configFile, env, log);
  await ensureCa(cfg, env, log);
  // swtpm_localca names anything but `ek` "platform" in its messages (observed with no --type).
  const what = r.type === 'ek' ? 'EK' : 'platform';
  const file = r.type === 'platform' ? 'platform.cert' : 'ek.cert';
  // The serial is taken before the certificate is made: a failure consumes it (§4.4 step 9).
  const serial = await nextSerial(cfg);
  try {
    return { bytes: await build(r, cfg, words, optsFile, serial), serial, what, file };
  } catch (e) {
    if (e instanceof LocalCaError) throw e;
    // swtpm_localca prints swtpm_cert's stderr as it is, then a newline.
    const stderr = e instanceof EkParamError ? e.stderr : `${(e as Error).message}\n`;
    throw new LocalCaError(`Could not create ${what} certificate locally\n${stderr}`);
  }
}
