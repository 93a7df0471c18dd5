// The deliberate differences between Debian's swtpm 0.7.1 and tswtpm that the
// differential tests accept, each tied to its row of docs/compat.md, and the masks
// for values that differ between any two runs of the same program.
import { type Allowed, type CompatRow, type Mask, compatRow } from './diff-run.js';

/** Rows of docs/compat.md (checked to exist when this module loads). */
export const ROW = {
  caps: compatRow('CMD_GET_CAPABILITY'),
  lockStorage: compatRow('CMD_LOCK_STORAGE'),
  unknownBlob: compatRow('CMD_GET_STATEBLOB with an unknown blob type'),
  autoShutdown: compatRow('automatic TPM2_Shutdown before INIT/STOP/SHUTDOWN and at exit'),
  hashOverrun: compatRow('CMD_HASH_DATA whose first chunk carries more bytes than `length`'),
  bigBlob: compatRow('CMD_SET_STATEBLOB with `length` > 512 KiB'),
  deadline: compatRow('A control request whose fixed part is incomplete after 500 ms'),
  dataDeadline: compatRow(
    'CMD_HASH_DATA or CMD_SET_STATEBLOB whose data in the first 4104 bytes is incomplete after 500 ms',
  ),
  unixDataServer: compatRow(
    'CMD_SET_DATAFD with `--server type=unixio`, after a data client disconnected',
  ),
  lateBody: compatRow(
    'SET_BUFFERSIZE, GET_INFO, LOCK_STORAGE with the body in a later segment than the code',
  ),
  earlyError: compatRow(
    'An early error in CMD_HASH_DATA or CMD_SET_STATEBLOB whose announced data has not arrived yet',
  ),
} as const satisfies Record<string, CompatRow>;

export const allowed = (rows: CompatRow[], swtpm: string, tswtpm: string): Allowed => ({
  rows,
  swtpm,
  tswtpm,
});

/** GET_CAPABILITY: 0.7.1 lacks PTM_CAP_LOCK_STORAGE (bit 16). */
export const CAPS_TPM2 = allowed([ROW.caps], '00000000 0000ffff', '00000000 0001ffff');
export const CAPS_TPM12 = allowed([ROW.caps], '00000000 00007fff', '00000000 00017fff');

/** LOCK_STORAGE: unknown to 0.7.1; ours locks (already locked, or no lock wanted yet). */
export const LOCK_OK = allowed([ROW.lockStorage], '0000000a', '00000000');

/** swtpm closes silently when the fixed part is incomplete after 500 ms; we say 0x03 first. */
export const DEADLINE = allowed([ROW.deadline], '|EOF', '00000003|EOF');

/** The 500 ms deadline applies on every exchange that waits for it. */
export const LONG = { quietMs: 900 } as const;

/**
 * A state blob in a GET_STATEBLOB reply whose content is run-specific (the volatile
 * state holds nonces and clocks): compare the 16-byte reply header, the 10-byte blob
 * header and the first TLV header, and the length.
 */
export const BLOB_STRUCTURE: Mask = {
  name: 'state-blob content is run-specific: headers and lengths compared',
  fn: (v) => {
    const [hex = '', eof = ''] = v.split('|');
    return `${hex.slice(0, 2 * 32)}..${hex.length / 2} bytes|${eof}`;
  },
};

/** TPM2_GetRandom / TPM_GetRandom: the header and the size, not the random bytes. */
export const RANDOM_BYTES: Mask = {
  name: 'random bytes of GetRandom',
  fn: (v) => {
    const [hex = '', eof = ''] = v.split('|');
    return `${hex.slice(0, 2 * 12)}..${hex.length / 2} bytes|${eof}`;
  },
};
