/**
 * The types of the control-channel client (client/control.ts): addresses, options and
 * what its methods return, plus the state blob type names.
 */
import type { CAP_NAMES } from '../protocol/ctrl/client-codec.js';
import {
  PTM_BLOB_TYPE_PERMANENT,
  PTM_BLOB_TYPE_SAVESTATE,
  PTM_BLOB_TYPE_VOLATILE,
} from '../protocol/ctrl/index.js';
import type { DeviceAddress } from './device.js';

/**
 * `{ host, port }` (host defaults to 127.0.0.1), `{ path }` of a Unix socket, or
 * `{ device }`: a CUSE TPM's character device, driven with PTM_* ioctls.
 */
export type ControlAddress =
  | { readonly host?: string; readonly port: number }
  | { readonly path: string }
  | DeviceAddress;

export interface ControlClientOptions {
  /** Per-call limit for connect + request + response, ms. Default 20000 (swtpm_ioctl's poll). */
  readonly timeoutMs?: number;
  /**
   * Keep one connection for all calls (as QEMU does) instead of one connection per
   * call (as swtpm_ioctl and tcti-swtpm do). swtpm serves one control client at a
   * time, so a persistent client blocks every other one until close(). For a device
   * path: keep the device open (a CUSE TPM has one opener at a time).
   */
  readonly persistent?: boolean;
}

export interface CallOptions {
  readonly timeoutMs?: number;
}

export type BlobType = 'permanent' | 'volatile' | 'savestate' | number;

export type CapabilityName = (typeof CAP_NAMES)[number]['name'];

export interface Capabilities {
  /** The PTM_CAP_* bit mask (0xffff for Debian's swtpm 0.7.1, TPM 2). */
  readonly mask: number;
  /** Each PTM_CAP_* bit by name without the prefix: `flags.SET_DATAFD`, `flags.HASHING`, … */
  readonly flags: Readonly<Record<string, boolean>>;
}

export interface StateBlob {
  readonly data: Uint8Array;
  /** The blob is still encrypted with the state-file key (PTM_STATE_FLAG_ENCRYPTED). */
  readonly encrypted: boolean;
  readonly stateFlags: number;
}

export interface BufferSizes {
  readonly bufferSize: number;
  readonly minSize: number;
  readonly maxSize: number;
}

export interface Config {
  readonly flags: number;
  readonly fileKey: boolean;
  readonly migrationKey: boolean;
}

const BLOB_TYPES: Readonly<Record<string, number>> = {
  permanent: PTM_BLOB_TYPE_PERMANENT,
  volatile: PTM_BLOB_TYPE_VOLATILE,
  savestate: PTM_BLOB_TYPE_SAVESTATE,
};

/** A blob type name or number as the PTM_BLOB_TYPE_* value. */
export function blobType(t: BlobType): number {
  if (typeof t === 'number') return t;
  const n = BLOB_TYPES[t];
  if (n === undefined) throw new TypeError(`unknown state blob type '${String(t)}'`);
  return n;
}
