/**
 * The steps of a `tswtpm socket|chardev` start, published on the diagnostics channel
 * `tswtpm:startup` as `{ step, at }` (`at`: ms since the Unix epoch, fractional, from
 * `performance.timeOrigin + performance.now()`, so another process can place it on its
 * own clock). bench/startup-breakdown.ts subscribes from a preloaded module to see where
 * the start-up time goes; with no subscriber a step costs one property read.
 *
 * @example
 * import { channel } from 'node:diagnostics_channel';
 * channel('tswtpm:startup').subscribe((m) => console.error(m)); // { step: 'main', at: … }
 */
import { diagChannel } from '../../diagnostics-channels.js';

export const STARTUP_CHANNEL = 'tswtpm:startup';

const startup = diagChannel(STARTUP_CHANNEL);

/** In the order a start with `--flags not-need-init` passes them. */
export type StartupStep =
  | 'main' // the CLI's code is loaded and main() runs
  | 'options' // the command line is parsed
  | 'koffi' // koffi is loaded
  | 'sandbox' // libseccomp is bound (and the chroot entered, with --chroot)
  | 'engine' // libtpms (and its libcrypto) is loaded and declared
  | 'state' // the storage is open and locked, the device built
  | 'listening' // the data and control channels listen
  | 'tpm-started' // TPMLIB_MainInit returned (the state loaded, or the TPM manufactured)
  | 'startup-sent' // TPM2_Startup / TPM_Startup answered
  | 'seccomp' // the seccomp filter is installed (or --seccomp action=none)
  | 'ready'; // about to report ready; the first command can be served

export interface StartupMessage {
  readonly step: StartupStep;
  readonly at: number;
}

/** Publishes one step (nothing is built when nobody listens). */
export function startupStep(step: StartupStep): void {
  if (startup.hasSubscribers) {
    const m: StartupMessage = { step, at: performance.timeOrigin + performance.now() };
    startup.publish(m);
  }
}
