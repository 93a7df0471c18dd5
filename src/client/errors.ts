import { getSystemErrorName } from 'node:util';
import { resultName } from '../protocol/tpm/results.js';

/**
 * Errors of the control and data clients. Each has a stable `code`; a TPM result
 * carries the number in `result` (undici/ky pattern).
 *
 * @example
 * try {
 *   await ctrl.setLocality(5);
 * } catch (e) {
 *   if (e instanceof TpmError && e.result === TPM_BAD_LOCALITY) console.log(e.message);
 *   // CMD_SET_LOCALITY: TPM_BAD_LOCALITY (0x3d)
 * }
 */
export class TpmError extends Error {
  readonly code = 'ERR_TPM_RESULT';
  /** The TPM result code the server answered with. */
  readonly result: number;
  /** Control command name (`SET_LOCALITY`) or `TPM` for a data-channel command. */
  readonly command: string;
  constructor(command: string, result: number) {
    super(`${command === 'TPM' ? 'TPM command' : `CMD_${command}`}: ${resultName(result)}`);
    this.name = 'TpmError';
    this.command = command;
    this.result = result;
  }
}

/** No (complete) answer within the call's timeout. The connection is closed. */
export class TpmTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(what: string, ms: number) {
    super(`${what}: no response within ${ms} ms`);
    this.name = 'TpmTimeoutError';
  }
}

/**
 * Connecting failed. `code` is the errno name: `ECONNREFUSED` (nobody listens),
 * `ENOENT` (no such socket file), `ENOTFOUND` (host name), `EAGAIN` (backlog full), …
 */
export class TpmConnectionError extends Error {
  readonly code: string;
  readonly address: string;
  constructor(address: string, code: string, cause?: unknown) {
    super(`cannot connect to ${address}: ${code}`, cause === undefined ? undefined : { cause });
    this.name = 'TpmConnectionError';
    this.code = code;
    this.address = address;
  }
}

/** The peer closed the connection or broke the framing (short or malformed response). */
export class TpmProtocolError extends Error {
  readonly code = 'ERR_TPM_PROTOCOL';
  constructor(message: string) {
    super(message);
    this.name = 'TpmProtocolError';
  }
}

/**
 * A system call on a CUSE TPM device failed (not a TPM result): `code` is the errno
 * name — `EINVAL` for an ioctl the device does not know (PTM_SET_DATAFD), `EBUSY` for
 * a TPM command written while a long one runs, `EIO` for a read() or write() in the
 * wrong state-blob transfer mode.
 *
 * @example
 * try {
 *   await new ControlClient({ device: '/dev/vtpm0' }).request({ cmd: 'SET_DATAFD' });
 * } catch (e) {
 *   if (e instanceof TpmDeviceError) console.log(e.code); // EINVAL
 * }
 */
export class TpmDeviceError extends Error {
  readonly code: string;
  readonly errno: number;
  /** `ioctl PTM_<NAME>`, `read` or `write`. */
  readonly syscall: string;
  readonly path: string;
  constructor(path: string, syscall: string, errno: number) {
    const code = errno > 0 ? getSystemErrorName(-errno) : 'UNKNOWN';
    super(`${syscall} on ${path}: ${code}`);
    this.name = 'TpmDeviceError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
  }
}
