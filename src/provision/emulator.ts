/**
 * The emulator swtpm_setup manufactures a state with: what it can do (its
 * `--print-capabilities`), whether a state exists (`--print-states`), and one running
 * instance on a state (a {@link TpmLink} that can be stopped). Two drivers implement it:
 * an in-process TPM (emulator-inprocess.ts) and a spawned program such as swtpm or
 * `tswtpm socket` (emulator-spawn.ts, swtpm_setup's `--tpm`).
 */
import type { TpmLink } from './link.js';

export interface EmulatorStart {
  /** `dir://…` or `file://…`, passed as `backend-uri=`. */
  readonly uri: string;
  readonly tpm2: boolean;
  /** The `--key` value, e.g. `pwdfd=9,mode=aes-256-cbc`. */
  readonly key?: string;
  /** Add `,lock` to `--tpmstate` (swtpm 0.10: `tpmstate-opt-lock`). */
  readonly lock: boolean;
  /** `--log file=<f>` for the emulator's own messages. */
  readonly logfile?: string;
}

export interface RunningEmulator extends TpmLink {
  /** CMD_SHUTDOWN (the emulator stores its state and ends), then wait for the end. */
  stop(): Promise<void>;
  /** Ends the emulator without CMD_SHUTDOWN (after a failure). */
  kill(): Promise<void>;
}

export interface Emulator {
  /** How the emulator is named in messages (swtpm_setup: its path). */
  readonly name: string;
  /** The emulator's `--print-capabilities` JSON text (`--tpm2` for the TPM 2 view). */
  capabilities(tpm2: boolean, logfile?: string): Promise<string>;
  /** The emulator's `--print-states` JSON text for the state at `uri`. */
  printStates(uri: string, tpm2: boolean, logfile?: string): Promise<string>;
  start(o: EmulatorStart): Promise<RunningEmulator>;
}

const TPM2_CC_CreatePrimary = 0x131;
const TPM2_CC_GetCapability = 0x17a;
const TSC_ORD_PhysicalPresence = 0x4000000a;
const TPM_ORD_TakeOwnership = 0x0d;
const TPM_ORD_CreateEndorsementKeyPair = 0x78;

/** swtpm_setup 0.10's per-command response timeouts in ms (provisioning.md §2.6). */
export function commandTimeoutMs(cmd: Uint8Array): number {
  if (cmd.length < 10) return 2000;
  const b = Buffer.from(cmd.buffer, cmd.byteOffset, cmd.byteLength);
  const tag = b.readUInt16BE(0);
  const code = b.readUInt32BE(6);
  if (tag === 0x8001 || tag === 0x8002) {
    if (code === TPM2_CC_GetCapability) return 7500;
    if (code === TPM2_CC_CreatePrimary) return 15000;
    return 2000;
  }
  if (code === TSC_ORD_PhysicalPresence) return 7500;
  if (code === TPM_ORD_CreateEndorsementKeyPair || code === TPM_ORD_TakeOwnership) return 15000;
  return 2000;
}

/** Control-channel timeout of swtpm_setup 0.10 (CMD_GET_INFO, CMD_SHUTDOWN). */
export const CTRL_TIMEOUT_MS = 2000;
