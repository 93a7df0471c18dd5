/**
 * Typed clients for swtpm-compatible TPMs (tswtpm and the C swtpm): the control
 * channel (CMD_*), the TPM data channel, and startTpm() for test suites.
 *
 * @example
 * import { ControlClient, TpmClient } from 'tswtpm';
 * const ctrl = new ControlClient({ host: '127.0.0.1', port: 2322 });
 * await ctrl.init();
 * const tpm = new TpmClient({ host: '127.0.0.1', port: 2321 });
 * const rsp = await tpm.transmit(Buffer.from('80010000000c000001440000', 'hex'));
 *
 * @example
 * // A CUSE TPM (tswtpm cuse -n vtpm0): ioctls and read()/write() on one opening
 * import { ControlClient, CuseDevice, TpmClient } from 'tswtpm';
 * const dev = await CuseDevice.open('/dev/vtpm0');
 * await new ControlClient({ device: dev }).init();
 * const rsp2 = await new TpmClient({ device: dev }).transmit(startup);
 * await dev.close();
 */
export {
  type BlobType,
  type BufferSizes,
  type CallOptions,
  type Capabilities,
  type Config,
  type ControlAddress,
  ControlClient,
  type ControlClientOptions,
  type StateBlob,
} from './control.js';
export { CuseDevice, type DeviceAddress } from './device.js';
export {
  TpmConnectionError,
  TpmDeviceError,
  TpmError,
  TpmProtocolError,
  TpmTimeoutError,
} from './errors.js';
export { type RunningTpm, type StartTpmOptions, TSWTPM_BIN, startTpm } from './start.js';
export { TpmClient, type TpmClientOptions, type TransmitOptions } from './tpm.js';
export type { Address } from './wire.js';
