/**
 * What provisioning needs from a TPM and from a certificate maker. swtpm_setup and
 * swtpm_bios speak to a TPM through these two shapes only, so the same steps run against
 * an in-process TPM, a spawned `tswtpm socket`, a C swtpm (`--tpm`), a TCP or Unix
 * address, or a character device.
 */

/** The `CMD_GET_INFO` flags=3 answer, as swtpm_setup passes it to the certificate tool. */
export interface TpmSpecInfo {
  /** `TPMSpecification.family`: "2.0" or "1.2". */
  readonly family: string;
  readonly level: number;
  readonly revision: number;
  /** `TPMAttributes.manufacturer`, e.g. "id:00001014". */
  readonly manufacturer: string;
  readonly model: string;
  /** `TPMAttributes.version`, e.g. "id:20191023". */
  readonly version: string;
}

/** One TPM, reached on its data channel (and, where it has one, its control channel). */
export interface TpmLink {
  /**
   * Sends one whole TPM command and resolves with the whole response. Rejects on a
   * transport failure or a response shorter than 10 bytes; a non-zero TPM result is a
   * normal response (the caller decides whether it is fatal).
   */
  transmit(command: Uint8Array): Promise<Uint8Array>;
  /** `CMD_GET_INFO` with `flags` on the control channel; the JSON without its trailing NUL. */
  getInfo(flags: number): Promise<string>;
}

/** What a certificate is for: `--type` of the create_certs_tool plug-in. */
export type CertType = 'ek' | 'platform';

/** One certificate request, as swtpm_setup hands it to the create_certs_tool plug-in. */
export interface CertRequest {
  readonly type: CertType;
  /** `--ek`: the RSA modulus in hex, or `x=<hex>,y=<hex>,id=<curve>` for an ECC EK. */
  readonly ekParam: string;
  readonly tpm2: boolean;
  readonly spec: TpmSpecInfo;
  readonly vmid?: string;
}

/**
 * Makes one certificate. Resolves with exactly the bytes to store in NV (TPM 2: the DER
 * certificate; TPM 1.2: the 7-byte TCG header and the DER), or rejects with an Error whose
 * message is what the tool reported.
 */
export type CertMaker = (req: CertRequest) => Promise<Uint8Array>;
