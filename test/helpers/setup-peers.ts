// Runs Debian's swtpm_setup and tswtpm_setup (in process, or driving an emulator with
// --tpm) with a private config whose create_certs_tool is Debian's swtpm_localca, and
// inspects the resulting state with tpm2-tools on C swtpm or tswtpm.
import { spawn } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTcp, tpm2 } from './procs.js';

export const TSWTPM_SETUP_BIN = fileURLToPath(
  new URL('../../../bin/tswtpm_setup.js', import.meta.url),
);
const TSWTPM_BIN = fileURLToPath(new URL('../../../bin/tswtpm.js', import.meta.url));

/** Who runs the setup: C swtpm_setup on C swtpm, or ours in process / on C swtpm / on tswtpm. */
export type SetupPeer = 'c' | 'ts' | 'ts-on-c' | 'ts-on-ts';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end (60 s at most); `fds` are handed on as its fds 3, 4, … */
export function runProgram(
  file: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
  fds: number[] = [],
): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      env: env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe', ...fds],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        code: code ?? 1,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
  });
}

/**
 * Runs a setup program. Without `env` the user's config dir ($XDG_CONFIG_HOME, else
 * ~/.config) points nowhere, so the machine's per-user swtpm_setup.conf and
 * swtpm-localca.conf/.options never apply. Certificates need `--config` (privateConfig)
 * or an `env` with a private XDG_CONFIG_HOME: otherwise /etc/swtpm_setup.conf would send
 * them to the machine's CA in /var/lib/swtpm-localca.
 */
export function runSetup(
  peer: SetupPeer,
  args: string[],
  env?: NodeJS.ProcessEnv,
  fds: number[] = [],
): Promise<Ran> {
  const certs = args.some((a) => a === '--create-ek-cert' || a === '--create-platform-cert');
  if (certs && !args.includes('--config') && env?.XDG_CONFIG_HOME === undefined) {
    throw new Error('runSetup: certificates without a private config would use the machine CA');
  }
  return runSetupIn(peer, args, env ?? { ...process.env, XDG_CONFIG_HOME: '/nonexistent' }, fds);
}

function runSetupIn(
  peer: SetupPeer,
  args: string[],
  env: NodeJS.ProcessEnv,
  fds: number[],
): Promise<Ran> {
  if (peer === 'c') return runProgram('swtpm_setup', args, env, fds);
  const tpm =
    peer === 'ts-on-c'
      ? ['--tpm', '/usr/bin/swtpm socket']
      : peer === 'ts-on-ts'
        ? ['--tpm', `${process.execPath} ${TSWTPM_BIN} socket`]
        : [];
  return runProgram(process.execPath, [TSWTPM_SETUP_BIN, ...tpm, ...args], env, fds);
}

/** Machine paths no test may write: root's default local CA and the per-user configs. */
export function machinePaths(): string[] {
  const cfg = join(homedir(), '.config');
  return [
    '/var/lib/swtpm-localca',
    ...['swtpm_setup.conf', 'swtpm-localca.conf', 'swtpm-localca.options'].map((f) => join(cfg, f)),
    join(cfg, 'var', 'lib', 'swtpm-localca'),
  ];
}

/**
 * Each path and, for a directory, each entry in it: type and mode, size, mtime (ns).
 * Comparing two snapshots shows any file created, removed or written in between.
 */
export function machineSnapshot(paths: readonly string[] = machinePaths()): string[] {
  const line = (p: string) => {
    try {
      const st = lstatSync(p, { bigint: true });
      return `${p} ${st.mode.toString(8)} ${st.size} ${st.mtimeNs}`;
    } catch {
      return `${p} absent`;
    }
  };
  return paths.flatMap((p) => {
    let entries: string[] = [];
    try {
      entries = readdirSync(p).sort();
    } catch {}
    return [line(p), ...entries.map((e) => line(join(p, e)))];
  });
}

/** A private swtpm_setup.conf + swtpm-localca.conf with the CA under `dir`/ca. */
export function privateConfig(dir: string): string {
  const ca = join(dir, 'ca');
  mkdirSync(ca, { recursive: true });
  writeFileSync(
    join(dir, 'localca.conf'),
    `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`,
  );
  writeFileSync(
    join(dir, 'localca.options'),
    '--platform-manufacturer Test\n--platform-version 1.0\n--platform-model QEMU\n',
  );
  const conf = join(dir, 'swtpm_setup.conf');
  writeFileSync(
    conf,
    `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${dir}/localca.conf\ncreate_certs_tool_options = ${dir}/localca.options\nactive_pcr_banks = sha256\n`,
  );
  chmodSync(dir, 0o755);
  return conf;
}

/** A description of a state that must be equal whoever manufactured it. */
export interface StateView {
  persistent: string;
  keys: Record<string, string>;
  nv: string;
  pcrs: string;
}

/** tpm2_readpublic without the key-specific lines (names and the public key itself). */
const stripKey = (yaml: string) =>
  yaml
    .split('\n')
    .filter((l) => !/^(name|qualified name|rsa|x|y):/.test(l.trim()))
    .join('\n');

/** tpm2_nvreadpublic without names and sizes (certificates differ in serial and key). */
const stripNv = (yaml: string) =>
  yaml
    .split('\n')
    .filter((l) => !/^(name|size):/.test(l.trim()))
    .join('\n');

/**
 * Serves `stateDir` (a directory, or a `--tpmstate` value such as `backend-uri=file://…`)
 * with C swtpm or tswtpm on TCP, with `extra` options, and runs `fn` with the data port.
 */
export async function withServer<T>(
  which: 'swtpm' | 'tswtpm',
  stateDir: string,
  fn: (port: number) => Promise<T>,
  extra: string[] = [],
): Promise<T> {
  const tpmstate = stateDir.includes('=') ? stateDir : `dir=${stateDir}`;
  const s = await startTcp(which, [
    '--tpm2',
    '--tpmstate',
    tpmstate,
    '--flags',
    'not-need-init,startup-clear',
    ...extra,
  ]);
  try {
    return await fn(s.port);
  } finally {
    await s.stop();
  }
}

export async function viewState(port: number): Promise<StateView> {
  const ok = async (tool: string, args: string[]) => {
    const r = await tpm2(tool, port, args);
    if (r.code !== 0) throw new Error(`tpm2_${tool} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const persistent = await ok('getcap', ['handles-persistent']);
  const keys: Record<string, string> = {};
  for (const m of persistent.matchAll(/0x[0-9a-fA-F]+/g)) {
    keys[m[0]] = stripKey(await ok('readpublic', ['-c', m[0]]));
  }
  return {
    persistent,
    keys,
    nv: stripNv(await ok('nvreadpublic', [])),
    pcrs: await ok('getcap', ['pcrs']),
  };
}

/** Public key (PEM) of the EK certificate in NV `index`. */
export async function certPublicKey(port: number, index: string, dir: string): Promise<string> {
  const der = join(dir, `${index}.der`);
  const r = await tpm2('nvread', port, [index, '-C', 'o', '-o', der]);
  if (r.code !== 0) throw new Error(`tpm2_nvread ${index}: ${r.stderr}`);
  const x = await runProgram('openssl', [
    'x509',
    '-inform',
    'der',
    '-in',
    der,
    '-noout',
    '-pubkey',
  ]);
  if (x.code !== 0) throw new Error(`openssl x509: ${x.stderr}`);
  return x.stdout;
}

/** tpm2_createek's RSA EK public key as PEM. */
export async function createEkPem(port: number, dir: string): Promise<string> {
  const pem = join(dir, 'ek.pem');
  const r = await tpm2('createek', port, [
    '-c',
    join(dir, 'ek.ctx'),
    '-G',
    'rsa',
    '-u',
    pem,
    '-f',
    'pem',
  ]);
  if (r.code !== 0) throw new Error(`tpm2_createek: ${r.stderr}`);
  return readFileSync(pem, 'utf8');
}

/** tpm2_readpublic of a persistent key as PEM. */
export async function readPublicPem(port: number, handle: string, dir: string): Promise<string> {
  const pem = join(dir, `${handle}.pem`);
  const r = await tpm2('readpublic', port, ['-c', handle, '-f', 'pem', '-o', pem]);
  if (r.code !== 0) throw new Error(`tpm2_readpublic: ${r.stderr}`);
  return readFileSync(pem, 'utf8');
}

/** Lines with per-run parts (dates, temp dirs, keys, program names) made comparable. */
export function normalizeLog(text: string): string[] {
  return (
    text
      .split('\n')
      // The CA is made by whichever run comes first.
      .filter((l) => l !== '' && !l.includes('Creating root CA'))
      .map((l) =>
        l
          .replace(/@ .*$/, '@ <date>')
          .replace(/swtpm_setup\.certs\.[A-Za-z0-9]+/g, 'swtpm_setup.certs.X')
          .replace(/--ek \S+/g, '--ek <key>')
          .replace(/\/tmp\/\S*swtpm_setup\.certs/g, '<tmp>/swtpm_setup.certs'),
      )
  );
}
