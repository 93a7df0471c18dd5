/**
 * The create_certs_tool plug-in protocol of swtpm_setup (provisioning.md §3.2): the tool
 * is run once per certificate with `--type ek|platform --ek <key> --dir <certdir> …` and
 * leaves `<certdir>/ek.cert` or `<certdir>/platform.cert` with exactly the bytes for NV.
 */
import { spawn } from 'node:child_process';
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { CertMaker, CertRequest } from './link.js';

export interface CertTool {
  /** The program and its leading arguments (e.g. `[node, tswtpm_localca.js]`). */
  readonly argv: readonly string[];
  /** Prefix of the tool's stdout lines in the log: the config value's basename. */
  readonly logName: string;
  /** `create_certs_tool_config` → `--configfile`. */
  readonly configfile?: string;
  /** `create_certs_tool_options` → `--optsfile`. */
  readonly optsfile?: string;
  /** swtpm_setup's `--logfile`, handed on. */
  readonly logfile?: string;
}

/** The tool's full argv for one request, in swtpm_setup's order. */
export function certToolArgv(tool: CertTool, req: CertRequest, dir: string): string[] {
  const s = req.spec;
  return [
    ...tool.argv,
    '--type',
    req.type,
    '--ek',
    req.ekParam,
    '--dir',
    dir,
    ...(tool.logfile !== undefined ? ['--logfile', tool.logfile] : []),
    ...(req.vmid !== undefined ? ['--vmid', req.vmid] : []),
    '--tpm-spec-family',
    s.family,
    '--tpm-spec-level',
    String(s.level),
    '--tpm-spec-revision',
    String(s.revision),
    '--tpm-manufacturer',
    s.manufacturer,
    '--tpm-model',
    s.model,
    '--tpm-version',
    s.version,
    ...(req.tpm2 ? ['--tpm2'] : []),
    ...(tool.configfile !== undefined ? ['--configfile', tool.configfile] : []),
    ...(tool.optsfile !== undefined ? ['--optsfile', tool.optsfile] : []),
  ];
}

function run(argv: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal !== null ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
  });
}

/**
 * A CertMaker that runs `tool` with its output in `dir()` (the private certificate
 * directory, made on first use). Logs `  Invoking …` and the tool's stdout lines.
 */
export function certToolMaker(
  tool: CertTool,
  dir: () => string,
  log: (line: string) => void,
): CertMaker {
  return async (req) => {
    const d = dir();
    const argv = certToolArgv(tool, req, d);
    log(`  Invoking ${argv.join(' ')}`);
    const r = await run(argv);
    if (r.code !== 0) throw new Error(`${tool.logName} exit with status ${r.code}: ${r.stderr}`);
    for (const line of r.stdout.split('\n')) if (line !== '') log(`${tool.logName}: ${line}`);
    const file = join(d, `${req.type}.cert`);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch {
      throw new Error(`Failed to open file “${file}”: No such file or directory`);
    }
    unlinkSync(file);
    return bytes;
  };
}
