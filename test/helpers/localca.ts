// Running Debian's swtpm_localca and our tswtpm_localca side by side on one CA directory,
// and the openssl views the tests compare (asn1parse tree, x509 -text extensions, verify).
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type SharedCopy, worldReadableCopy } from './world-readable.js';

export const LOCALCA_BIN = fileURLToPath(
  new URL('../../../bin/tswtpm_localca.js', import.meta.url),
);

export const haveSwtpmLocalca = (): boolean =>
  spawnSync('swtpm_localca', ['--help'], { stdio: 'ignore' }).status === 0 &&
  spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;

export type Tool = 'c' | 'ts';

/** A CA config (swtpm-localca.conf) and options file under `base`; the CA lives in base/ca. */
export interface CaFiles {
  readonly base: string;
  readonly ca: string;
  readonly conf: string;
  readonly opts: string;
}

export function caFiles(base: string, extraConf = ''): CaFiles {
  mkdirSync(base, { recursive: true });
  const ca = join(base, 'ca');
  const conf = join(base, 'swtpm-localca.conf');
  const opts = join(base, 'swtpm-localca.options');
  writeFileSync(
    conf,
    `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n${extraConf}`,
  );
  // Debian's /etc/swtpm-localca.options.
  writeFileSync(
    opts,
    '--platform-manufacturer Fedora\n--platform-version 2.1\n--platform-model QEMU\n',
  );
  return { base, ca, conf, opts };
}

/** Options as swtpm_setup passes them (provisioning.md §3.2) for a TPM 2 or a TPM 1.2. */
export function tpmArgs(tpm2: boolean): string[] {
  return tpm2
    ? [
        '--tpm-spec-family',
        '2.0',
        '--tpm-spec-level',
        '0',
        '--tpm-spec-revision',
        '164',
        '--tpm-manufacturer',
        'id:00001014',
        '--tpm-model',
        'swtpm',
        '--tpm-version',
        'id:20191023',
        '--tpm2',
      ]
    : [
        '--tpm-spec-family',
        '1.2',
        '--tpm-spec-level',
        '2',
        '--tpm-spec-revision',
        '116',
        '--tpm-manufacturer',
        'id:00001014',
        '--tpm-model',
        'swtpm',
        '--tpm-version',
        'id:00740001',
      ];
}

/** An RSA modulus in hex, as swtpm_setup passes `--ek`. */
export function rsaModulus(bits: number): string {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.from(jwk.n!, 'base64url').toString('hex');
}

/** `x=…,y=…,id=secp384r1` for a fresh P-384 point. */
export function p384Param(): string {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const jwk = publicKey.export({ format: 'jwk' });
  const hex = (s: string | undefined) => Buffer.from(s!, 'base64url').toString('hex');
  return `x=${hex(jwk.x)},y=${hex(jwk.y)},id=secp384r1`;
}

export interface RunOpts {
  /** Extra environment; XDG_CONFIG_HOME always points at an empty directory. */
  readonly env?: Record<string, string>;
  /** Run as this uid/gid through setpriv. */
  readonly uid?: number;
}

const shared: { copy?: SharedCopy } = {};

/**
 * tswtpm_localca for another uid: from a world-readable copy of the package (a checkout in
 * a 0700 `mktemp -d` is not readable by nobody), made once and removed at exit.
 */
function localcaBinFor(uid: number | undefined): string {
  if (uid === undefined) return LOCALCA_BIN;
  if (shared.copy === undefined) {
    const copy = worldReadableCopy();
    shared.copy = copy;
    process.once('exit', () => copy.remove());
  }
  return join(shared.copy.bin, '..', 'tswtpm_localca.js');
}

/** One run of swtpm_localca (`c`) or tswtpm_localca (`ts`). */
export function runLocalca(tool: Tool, args: string[], o: RunOpts = {}): SpawnSyncReturns<string> {
  let cmd =
    tool === 'c' ? ['swtpm_localca', ...args] : [process.execPath, localcaBinFor(o.uid), ...args];
  if (o.uid !== undefined)
    cmd = ['setpriv', `--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', ...cmd];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    XDG_CONFIG_HOME: '/nonexistent',
    ...o.env,
  };
  if (process.env.TMPDIR !== undefined) env.TMPDIR = process.env.TMPDIR;
  return spawnSync(cmd[0]!, cmd.slice(1), {
    encoding: 'utf8',
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function openssl(args: string[], input?: Buffer): string {
  const r = spawnSync('openssl', args, { input, encoding: 'buffer' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** The DER of a plug-in output file (TPM 1.2: after the 7-byte header). */
export const certDer = (bytes: Buffer, tpm2: boolean): Buffer => (tpm2 ? bytes : bytes.subarray(7));

/**
 * `openssl asn1parse -i` without offsets and lengths, with the serial and the notBefore
 * time (which differ between any two runs) replaced by placeholders.
 */
export function asnTree(der: Buffer): string[] {
  const lines = openssl(['asn1parse', '-inform', 'der', '-i'], der)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.replace(/^\s*\d+:d=(\d+)\s+hl=\s*\d+\s+l=\s*\d+/, 'd=$1').trimEnd());
  // Line 4 is tbsCertificate.serialNumber (after SEQ, SEQ, [0], version INTEGER).
  lines[4] = lines[4]!.replace(/:[0-9A-F]+$/, ':<serial>');
  return lines.map((l) => l.replace(/UTCTIME( +):\d{12}Z$/, 'UTCTIME$1:<time>'));
}

/** The X509v3 extensions block of `openssl x509 -text`. */
export function extText(der: Buffer): string {
  const t = openssl(['x509', '-inform', 'der', '-noout', '-text'], der);
  const m = /X509v3 extensions:\n([\s\S]*?)\n\s*Signature Algorithm:/.exec(t);
  if (m === null) throw new Error(`no extensions in\n${t}`);
  return m[1]!;
}

export const serialOf = (der: Buffer): bigint =>
  BigInt(`0x${openssl(['x509', '-inform', 'der', '-noout', '-serial'], der).trim().split('=')[1]}`);

/** `openssl verify` of `der` against root + intermediate of a local CA; returns its output. */
export function verify(der: Buffer, ca: string, scratch: string): { ok: boolean; out: string } {
  const pem = join(scratch, `verify-${process.hrtime.bigint()}.pem`);
  writeFileSync(pem, openssl(['x509', '-inform', 'der'], der));
  const r = spawnSync(
    'openssl',
    [
      'verify',
      '-CAfile',
      join(ca, 'swtpm-localca-rootca-cert.pem'),
      '-untrusted',
      join(ca, 'issuercert.pem'),
      pem,
    ],
    { encoding: 'utf8' },
  );
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

/** Names, modes and contents of every file in a CA directory (to check "untouched"). */
export function snapshot(dir: string, skip: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    if (skip.includes(name)) continue;
    const p = join(dir, name);
    const st = statSync(p);
    out[name] = `${(st.mode & 0o7777).toString(8)} ${st.uid} ${readFileSync(p).toString('base64')}`;
  }
  return out;
}
