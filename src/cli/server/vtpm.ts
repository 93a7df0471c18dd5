import { writeSync } from 'node:fs';
import { VtpmProxyError, createVtpmProxy } from '../../transport/vtpm-proxy.js';
import { CliError } from '../common/subopts.js';
import { strerror } from '../common/sys.js';
import type { Config } from './args.js';

/**
 * `chardev --vtpm-proxy` (runtime-features.md §3.2): refuses a provided device, creates
 * /dev/tpmN and prints swtpm's `New TPM device:` line on stdout, unprefixed and
 * synchronously (scripts and tests read it while the process runs). Returns the proxy
 * fd: one read() is one kernel command, one write() its response.
 */
export function openVtpmProxy(cfg: Config): number {
  // swtpm checks this before opening /dev/vtpmx (observed).
  if (cfg.chardev !== undefined || cfg.server?.fd !== undefined) {
    throw new CliError('Cannot use vTPM proxy with a provided device.');
  }
  let dev: ReturnType<typeof createVtpmProxy>;
  try {
    dev = createVtpmProxy(cfg.tpm2);
  } catch (err) {
    if (!(err instanceof VtpmProxyError)) throw err;
    throw new CliError(
      err.syscall === 'open'
        ? `Could not open /dev/vtpmx: ${strerror(err.errno)}`
        : `Ioctl to create vtpm proxy failed: ${strerror(err.errno)}`,
    );
  }
  writeSync(1, `New TPM device: /dev/tpm${dev.tpmNum} (major/minor = ${dev.major}/${dev.minor})\n`);
  return dev.fd;
}
