/**
 * One manufacturing run of tswtpm_setup (provisioning.md §1.1 steps 9-15): checks,
 * state probe and overwrite policy, config, keys, the TPM 2 or TPM 1.2 sequence, and
 * the start/end lines. Existing state is set aside, not deleted, until the run succeeded.
 */
import { existsSync, writeSync } from 'node:fs';
import type { Emulator, RunningEmulator } from '../../provision/emulator.js';
import { SetupError, setupTpm2 } from '../../provision/tpm2-setup.js';
import { CliError } from '../common/subopts.js';
import { CertDir, makeCertMaker } from './cert-tool-config.js';
import { SYSCONF_SETUP_CONF, type SetupConfig, readSetupConfig } from './config.js';
import { chooseKey } from './keys.js';
import type { SetupLogger } from './log.js';
import type { SetupArgs } from './options.js';
import {
  checkFamily,
  checkLogfile,
  chooseRsaKeySize,
  groupName,
  setupDate,
  userName,
} from './prepare.js';
import {
  StateGuard,
  checkDirectory,
  checkStateAccess,
  parseStateLocation,
  recoverSetAside,
} from './state.js';
import { runTpm12, tpm12Options } from './tpm12-adapter.js';
import { DEFAULT_PCR_BANKS } from './usage.js';

interface RunContext {
  readonly configFile: string;
  /** --config was given (a missing file is then an error, never the fallback). */
  readonly configGiven: boolean;
  /** The emulator's plain `--print-capabilities` text. */
  readonly plainCaps: string;
}

/** Returns the exit code; CliErrors before the log file is set go to the caller. */
export async function manufacture(
  a: SetupArgs,
  emu: Emulator,
  log: SetupLogger,
  configFile: string,
  configGiven: boolean,
  plainCaps: string,
): Promise<number> {
  const user = userName();
  const logfile = a.values.get('logfile');
  if (logfile !== undefined) {
    checkLogfile(logfile);
    log.setLogfile(logfile);
  }
  try {
    return await checked(a, emu, log, user, { configFile, configGiven, plainCaps });
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    if (err.message !== '') log.error(err.message);
    return err.exitCode;
  }
}

async function checked(
  a: SetupArgs,
  emu: Emulator,
  log: SetupLogger,
  user: string,
  ctx: RunContext,
): Promise<number> {
  const state = a.values.get('tpm-state');
  if (state === undefined) throw new CliError('--tpm-state must be provided');
  const loc = parseStateLocation(state);
  checkStateAccess(loc, user);
  const certFilesDir = a.values.get('write-ek-cert-files');
  if (certFilesDir !== undefined) checkDirectory(certFilesDir, user);
  checkFamily(a);
  const tpm2 = a.flags.has('tpm2');
  const reconfigure = a.flags.has('reconfigure');
  for (const f of recoverSetAside(loc)) {
    log.info(`Restored ${f}: an interrupted tswtpm_setup run had set it aside.`);
  }
  const guard = StateGuard.before(loc);
  if (!reconfigure) {
    let states: string;
    try {
      states = await emu.printStates(loc.uri, tpm2, log.file);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    if (states.includes('permall')) {
      if (a.flags.has('not-overwrite')) {
        log.info('Not overwriting existing state file.');
        return 0;
      }
      if (!a.flags.has('overwrite')) throw new CliError("Found existing TPM state 'permall'.");
      guard.setAside('clear');
    }
  } else {
    guard.setAside('keep');
  }
  try {
    const code = await configured(a, emu, log, user, ctx, loc.uri);
    if (code === 0) guard.commit();
    else guard.restore();
    return code;
  } catch (err) {
    guard.restore();
    throw err;
  }
}

/** Config, banks, keys and key size, then the run itself. */
async function configured(
  a: SetupArgs,
  emu: Emulator,
  log: SetupLogger,
  user: string,
  ctx: RunContext,
  uri: string,
): Promise<number> {
  const { configFile, configGiven } = ctx;
  const config: SetupConfig | undefined = readSetupConfig(configFile);
  if (config === undefined) {
    // No config file anywhere: the tswtpm_localca fallback (docs/compat.md). A given or
    // an existing but unreadable file is swtpm_setup's error.
    if (configGiven || configFile !== SYSCONF_SETUP_CONF || existsSync(configFile)) {
      throw new CliError(`User ${user} cannot read config file ${configFile}.`);
    }
    log.info(`Config file ${configFile} not found; certificates will be made by tswtpm_localca.`);
  }
  const tpm2 = a.flags.has('tpm2');
  let banks = a.pcrBanks ?? '';
  if (banks.split(',').every((b) => b.trim() === '')) {
    banks = config?.activePcrBanks?.trim() || DEFAULT_PCR_BANKS;
  }
  const key = chooseKey(a.values, user);
  const tpm2Caps = tpm2 ? await emu.capabilities(true, log.file) : '';
  const rsaKeySize = chooseRsaKeySize(
    a.values.get('rsa-keysize') ?? config?.rsaKeysize,
    tpm2,
    tpm2Caps,
    log.info,
  );
  const profileOpts = ['profile', 'profile-name', 'profile-file', 'profile-file-fd'] as const;
  if (profileOpts.some((p) => a.values.has(p))) {
    // libtpms < 0.10 has no profiles: swtpm_setup 0.10.2's answer (§1.4).
    throw new CliError(`Missing 'profiles' field: ${tpm2Caps.trim()}`);
  }
  const creating = ['createek', 'create-ek-cert', 'create-platform-cert'] as const;
  if (a.flags.has('reconfigure') && creating.some((f) => a.flags.has(f))) {
    throw new CliError('Reconfiguration is not supported with creation of EK or certificates');
  }
  if (key !== undefined) log.info(key.logLine);
  const verb = a.flags.has('reconfigure') ? 'reconfiguration' : 'manufacturing';
  log.info(`Starting vTPM ${verb} as ${user}:${groupName()} @ ${setupDate()}`);
  const certDir = new CertDir();
  let ok = false;
  try {
    const certs = makeCertMaker(config, certDir, log.file, log.info);
    const lock = ctx.plainCaps.includes('"tpmstate-opt-lock"');
    ok = await onEmulator(
      emu,
      log,
      {
        uri,
        tpm2,
        lock,
        ...(key !== undefined ? { key: key.key } : {}),
        ...(log.file !== undefined ? { logfile: log.file } : {}),
      },
      async (link) => {
        if (tpm2) {
          await setupTpm2(link, tpm2Options(a, banks, rsaKeySize), certs, log);
        } else {
          await runTpm12(link, tpm12Options(a), certs, log.info);
        }
      },
    );
  } finally {
    certDir.remove();
  }
  if (ok) log.info('Successfully authored TPM state.');
  else log.error('An error occurred. Authoring the TPM state failed.');
  log.info(`Ending vTPM manufacturing @ ${setupDate()}`);
  return ok ? 0 : 1;
}

function tpm2Options(a: SetupArgs, pcrBanks: string, rsaKeySize: 2048 | 3072) {
  const f = a.flags;
  const dir = a.values.get('write-ek-cert-files');
  const vmid = a.values.get('vmid');
  return {
    createSpk: f.has('create-spk'),
    ecc: f.has('ecc'),
    createEk: f.has('createek'),
    createEkCert: f.has('create-ek-cert'),
    createPlatformCert: f.has('create-platform-cert'),
    allowSigning: f.has('allow-signing'),
    decryption: f.has('decryption'),
    lockNvram: f.has('lock-nvram'),
    rsaKeySize,
    pcrBanks,
    reconfigure: f.has('reconfigure'),
    ...(dir !== undefined ? { writeEkCertFilesDir: dir } : {}),
    ...(vmid !== undefined ? { vmid } : {}),
  };
}

/** Starts the emulator, runs `steps`, stops it; false (logged) on any failure. */
async function onEmulator(
  emu: Emulator,
  log: SetupLogger,
  start: Parameters<Emulator['start']>[0],
  steps: (link: RunningEmulator) => Promise<void>,
): Promise<boolean> {
  let tpm: RunningEmulator;
  try {
    tpm = await emu.start(start);
  } catch (err) {
    log.error((err as Error).message);
    log.error(`Could not start the TPM ${start.tpm2 ? '2' : '1.2'}.`);
    return false;
  }
  // printf'd by swtpm_setup on stdout, also with --logfile.
  writeSync(1, 'TPM is listening on Unix socket.\n');
  try {
    await steps(tpm);
  } catch (err) {
    if (!(err instanceof SetupError)) log.error((err as Error).message);
    await tpm.kill().catch(() => {});
    return false;
  }
  try {
    await tpm.stop();
  } catch (err) {
    log.error(`CMD_SHUTDOWN failed: ${(err as Error).message}`);
    return false;
  }
  return true;
}
