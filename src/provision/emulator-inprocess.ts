/**
 * The default emulator of tswtpm_setup: a TPM in this process (startTpmInProcess, the
 * same server as `tswtpm socket`), so no child process is needed. Its
 * `--print-capabilities` and `--print-states` are answered by the same code that
 * answers them for `tswtpm socket`.
 */
import { parseArgs } from '../cli/server/args.js';
import { printCapabilities } from '../cli/server/capabilities.js';
import { printStates } from '../cli/server/storage-setup.js';
import { startTpmInProcess } from '../in-process.js';
import { openBackend, parseTpmstate } from '../storage/uri.js';
import type { Emulator, EmulatorStart, RunningEmulator } from './emulator.js';

export class InProcessEmulator implements Emulator {
  readonly name = 'tswtpm (in process)';

  async capabilities(tpm2: boolean): Promise<string> {
    const args = tpm2 ? ['--tpm2', '--print-capabilities'] : ['--print-capabilities'];
    return printCapabilities(parseArgs('socket', args));
  }

  async printStates(uri: string, tpm2: boolean): Promise<string> {
    // Like swtpm's probe, a missing or empty linear file reads as "no states".
    const backend = openBackend(parseTpmstate(`backend-uri=${uri}`));
    try {
      return printStates(backend, tpm2 ? '2.0' : '1.2');
    } finally {
      backend.close();
    }
  }

  async start(o: EmulatorStart): Promise<RunningEmulator> {
    const args = ['--tpmstate', `backend-uri=${o.uri}${o.lock ? ',lock' : ''}`];
    if (o.key !== undefined) args.push('--key', o.key);
    const tpm = await startTpmInProcess({ tpm2: o.tpm2, args });
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await tpm.close();
    };
    return {
      transmit: (cmd) => tpm.tpm.transmit(cmd),
      getInfo: (flags) => tpm.control.getInfoText(flags),
      async stop() {
        await tpm.control.shutdown();
        await close();
      },
      kill: close,
    };
  }
}
