/**
 * tswtpm_setup: a drop-in for swtpm_setup 0.10 (provisioning.md §1). By default it
 * manufactures the state on a TPM in this process; with `--tpm <emulator words>` it
 * probes and starts that emulator as swtpm_setup does (C swtpm, `tswtpm socket`).
 * Exit codes: 0 success (also existing state with --not-overwrite), 1 any error.
 */
import { writeSync } from 'node:fs';
import { basename } from 'node:path';
import { InProcessEmulator } from '../../provision/emulator-inprocess.js';
import { SpawnedEmulator } from '../../provision/emulator-spawn.js';
import type { Emulator } from '../../provision/emulator.js';
import { runAs } from '../common/runas.js';
import { CliError } from '../common/subopts.js';
import { setupCapabilities } from './capabilities.js';
import { LOCALCA_BIN, findInPath } from './cert-tool-config.js';
import { createConfigFiles } from './config-files.js';
import { defaultConfigFile } from './config.js';
import { SetupLogger } from './log.js';
import { type SetupArgs, parseSetupArgs } from './options.js';
import { manufacture } from './run.js';
import { VERSION_LINE, usage } from './usage.js';

const out = (text: string) => writeSync(1, text);

/** The emulator: `--tpm` words (split on single spaces, empty pieces dropped) or in-process. */
function chooseEmulator(a: SetupArgs): Emulator {
  const tpm = a.values.get('tpm');
  if (tpm === undefined) return new InProcessEmulator();
  const words = tpm.split(' ').filter((w) => w !== '');
  const first = words[0] ?? '';
  if (findInPath(first) === undefined)
    throw new CliError(`swtpm at ${first} is not an executable.`);
  const fds = ['keyfile-fd', 'pwdfile-fd']
    .map((k) => a.values.get(k as 'keyfile-fd'))
    .filter((v): v is string => v !== undefined)
    .map(Number);
  return new SpawnedEmulator(words, fds);
}

async function run(argv: readonly string[]): Promise<number> {
  const prog = basename(process.argv[1] ?? 'tswtpm_setup').replace(/\.js$/, '');
  // Computed before --runas, from the calling user's environment (§1.15).
  const configFile = defaultConfigFile();
  let a: SetupArgs;
  try {
    a = parseSetupArgs(prog, argv);
  } catch (err) {
    if (err instanceof CliError && err.message.startsWith(`${prog}:`)) {
      writeSync(2, `${err.message}\n`);
      out(usage(prog, configFile));
      return 1;
    }
    throw err;
  }
  for (const w of a.warnings) out(w);
  if (a.createConfigFiles !== undefined) {
    return createConfigFiles(a.createConfigFiles, {
      certsTool: LOCALCA_BIN,
      profiles: false,
      out: (l) => out(`${l}\n`),
    });
  }
  if (a.flags.has('help')) {
    out(usage(prog, configFile));
    return 0;
  }
  if (a.flags.has('version')) {
    out(`${VERSION_LINE}\n`);
    return 0;
  }
  const emu = chooseEmulator(a);
  const logfile = a.values.get('logfile');
  const plain = await emu.capabilities(false, logfile);
  if (a.flags.has('print-capabilities')) {
    out(`${await setupCapabilities(emu, logfile)}\n`);
    return 0;
  }
  const tpm2 = a.flags.has('tpm2');
  if (!plain.includes(tpm2 ? '"tpm-2.0"' : '"tpm-1.2"')) {
    throw new CliError(`swtpm at ${emu.name} does not support TPM ${tpm2 ? '2' : '1.2'}`);
  }
  const runas = a.values.get('runas');
  if (runas !== undefined) runAs(runas);
  if (a.flags.has('print-profiles')) {
    // No emulator here has profiles (libtpms < 0.10): nothing local, distro or built in.
    out('{}\n');
    return tpm2 ? 1 : 0;
  }
  const log = new SetupLogger();
  return manufacture(
    a,
    emu,
    log,
    a.values.get('config') ?? configFile,
    a.values.has('config'),
    plain,
  );
}

/** Entry point of bin/tswtpm_setup.js. */
export function main(argv: string[]): void {
  run(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof CliError) {
        if (err.message !== '') writeSync(2, `${err.message}\n`);
        process.exitCode = err.exitCode;
        return;
      }
      writeSync(2, `${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
