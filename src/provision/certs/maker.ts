/**
 * The in-process certificate maker: what swtpm_setup gets from running swtpm_localca, as a
 * {@link CertMaker} (src/provision/link.ts), with no child process.
 */
import type { CertMaker, CertRequest } from '../link.js';
import { issueLocalCaCert } from './issue.js';
import type { InfoLog } from './localca.js';

export interface LocalCaMakerOptions {
  /** swtpm-localca.conf (`create_certs_tool_config`); default as swtpm_localca's. */
  readonly configFile?: string;
  /** swtpm-localca.options (`create_certs_tool_options`); default as swtpm_localca's. */
  readonly optsFile?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** swtpm_localca's informational lines (e.g. `Successfully created EK certificate locally.`). */
  readonly log?: InfoLog;
}

/**
 * A CertMaker backed by the local CA, equivalent to swtpm_setup calling swtpm_localca.
 *
 * @example
 * const make = localCaCertMaker({ configFile: '/etc/swtpm-localca.conf' });
 * const der = await make({ type: 'ek', ekParam: modulusHex, tpm2: true, spec });
 */
export function localCaCertMaker(opts: LocalCaMakerOptions = {}): CertMaker {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => {});
  return async (req: CertRequest) => {
    const r = await issueLocalCaCert(
      {
        type: req.type,
        ekParam: req.ekParam,
        tpm2: req.tpm2,
        specFamily: req.spec.family,
        specLevel: String(req.spec.level),
        specRevision: String(req.spec.revision),
        tpmManufacturer: req.spec.manufacturer,
        tpmModel: req.spec.model,
        tpmVersion: req.spec.version,
        ...(req.vmid !== undefined ? { vmid: req.vmid } : {}),
        ...(opts.configFile !== undefined ? { configFile: opts.configFile } : {}),
        ...(opts.optsFile !== undefined ? { optsFile: opts.optsFile } : {}),
      },
      env,
      log,
    );
    log(`Successfully created ${r.what} certificate locally.`);
    return r.bytes;
  };
}
