/**
 * One table entry per control command (swtpm_ioctls(3), tpm_ioctl.h): its socket code,
 * ioctl number, capability bit, request/response layouts and body-length rule. The
 * big-endian socket codec (socket.ts) and the host-endian ioctl codec (ioctl.ts) both
 * read these entries; neither holds its own copy of a wire fact.
 */

/** Field of a request or response half, at `off` inside the ioctl union. */
export interface Field {
  readonly name: string;
  readonly type: 'u8' | 'u32' | 'u64' | 'bytes';
  readonly off: number;
  /** For 'bytes': the field holding the byte count, and the room in the ioctl struct. */
  readonly lengthField?: string;
  readonly max?: number;
}

/** How the socket variant checks the body that follows the 4-byte code (§2.2). */
export type BodyRule =
  | { readonly kind: 'none' }
  | { readonly kind: 'exact'; readonly size: number }
  | { readonly kind: 'atLeast'; readonly size: number };

export interface CtrlDef {
  /** Name without the CMD_/PTM_ prefix. */
  readonly name: CtrlName;
  /** Socket command code; always ioctl nr + 1. */
  readonly code: number;
  readonly nr: number;
  /** PTM_CAP_* bit that advertises the command. */
  readonly cap: number;
  /** ioctl direction: R = kernel copies out, W = copies in, RW = both. */
  readonly dir: 'R' | 'W' | 'RW';
  /** Size of the ioctl argument (the whole union, x86_64). */
  readonly size: number;
  readonly req: readonly Field[];
  readonly resp: readonly Field[];
  readonly body: BodyRule;
  /** Fixed size of the response half when it ends in padding (ptm_est: 8). */
  readonly respSize?: number;
}

export const CTRL_NAMES = [
  'GET_CAPABILITY',
  'INIT',
  'SHUTDOWN',
  'GET_TPMESTABLISHED',
  'SET_LOCALITY',
  'HASH_START',
  'HASH_DATA',
  'HASH_END',
  'CANCEL_TPM_CMD',
  'STORE_VOLATILE',
  'RESET_TPMESTABLISHED',
  'GET_STATEBLOB',
  'SET_STATEBLOB',
  'STOP',
  'GET_CONFIG',
  'SET_DATAFD',
  'SET_BUFFERSIZE',
  'GET_INFO',
  'LOCK_STORAGE',
] as const;
export type CtrlName = (typeof CTRL_NAMES)[number];

export const PTM_CAP_INIT = 0x1;
export const PTM_CAP_SHUTDOWN = 0x2;
export const PTM_CAP_GET_TPMESTABLISHED = 0x4;
export const PTM_CAP_SET_LOCALITY = 0x8;
export const PTM_CAP_HASHING = 0x10;
export const PTM_CAP_CANCEL_TPM_CMD = 0x20;
export const PTM_CAP_STORE_VOLATILE = 0x40;
export const PTM_CAP_RESET_TPMESTABLISHED = 0x80;
export const PTM_CAP_GET_STATEBLOB = 0x100;
export const PTM_CAP_SET_STATEBLOB = 0x200;
export const PTM_CAP_STOP = 0x400;
export const PTM_CAP_GET_CONFIG = 0x800;
export const PTM_CAP_SET_DATAFD = 0x1000;
export const PTM_CAP_SET_BUFFERSIZE = 0x2000;
export const PTM_CAP_GET_INFO = 0x4000;
export const PTM_CAP_SEND_COMMAND_HEADER = 0x8000;
export const PTM_CAP_LOCK_STORAGE = 0x10000;

export const PTM_INIT_FLAG_DELETE_VOLATILE = 0x1;
export const PTM_STATE_FLAG_DECRYPTED = 1;
export const PTM_STATE_FLAG_ENCRYPTED = 2;
export const PTM_BLOB_TYPE_PERMANENT = 1;
export const PTM_BLOB_TYPE_VOLATILE = 2;
export const PTM_BLOB_TYPE_SAVESTATE = 3;
export const PTM_CONFIG_FLAG_FILE_KEY = 0x1;
export const PTM_CONFIG_FLAG_MIGRATION_KEY = 0x2;
/** CUSE chunk size for state blobs and GET_INFO. */
export const PTM_STATE_BLOB_SIZE = 3072;
export const PTM_GETINFO_SIZE = 3072;
/** Room for hash data in one ptm_hdata. */
export const PTM_HASH_DATA_SIZE = 4096;

const RESULT: Field = { name: 'result', type: 'u32', off: 0 };
const NONE: BodyRule = { kind: 'none' };
const EMPTY: BodyRule = { kind: 'exact', size: 0 };

function def(
  name: CtrlName,
  cap: number,
  dir: CtrlDef['dir'],
  size: number,
  req: Field[],
  resp: Field[],
  body: BodyRule,
): CtrlDef {
  const nr = CTRL_NAMES.indexOf(name);
  return { name, code: nr + 1, nr, cap, dir, size, req, resp, body };
}

const u32 = (name: string, off: number): Field => ({ name, type: 'u32', off });

export const CTRL_TABLE: readonly CtrlDef[] = [
  // Socket: result 0 + BE32 caps, the same bytes as one BE u64; CUSE: a host-endian u64.
  def('GET_CAPABILITY', 0, 'R', 8, [], [{ name: 'caps', type: 'u64', off: 0 }], NONE),
  def('INIT', PTM_CAP_INIT, 'RW', 4, [u32('initFlags', 0)], [RESULT], {
    kind: 'exact',
    size: 4,
  }),
  def('SHUTDOWN', PTM_CAP_SHUTDOWN, 'R', 4, [], [RESULT], EMPTY),
  {
    // u8 bit then three zero padding bytes.
    ...def(
      'GET_TPMESTABLISHED',
      PTM_CAP_GET_TPMESTABLISHED,
      'R',
      8,
      [],
      [RESULT, { name: 'bit', type: 'u8', off: 4 }],
      EMPTY,
    ),
    respSize: 8,
  },
  def(
    'SET_LOCALITY',
    PTM_CAP_SET_LOCALITY,
    'RW',
    4,
    [{ name: 'locality', type: 'u8', off: 0 }],
    [RESULT],
    { kind: 'atLeast', size: 1 },
  ),
  def('HASH_START', PTM_CAP_HASHING, 'R', 4, [], [RESULT], EMPTY),
  def(
    'HASH_DATA',
    PTM_CAP_HASHING,
    'RW',
    4 + PTM_HASH_DATA_SIZE,
    [
      u32('length', 0),
      { name: 'data', type: 'bytes', off: 4, lengthField: 'length', max: PTM_HASH_DATA_SIZE },
    ],
    [RESULT],
    { kind: 'atLeast', size: 4 },
  ),
  def('HASH_END', PTM_CAP_HASHING, 'R', 4, [], [RESULT], EMPTY),
  def('CANCEL_TPM_CMD', PTM_CAP_CANCEL_TPM_CMD, 'R', 4, [], [RESULT], EMPTY),
  def('STORE_VOLATILE', PTM_CAP_STORE_VOLATILE, 'R', 4, [], [RESULT], EMPTY),
  def(
    'RESET_TPMESTABLISHED',
    PTM_CAP_RESET_TPMESTABLISHED,
    'RW',
    4,
    [{ name: 'locality', type: 'u8', off: 0 }],
    [RESULT],
    { kind: 'atLeast', size: 1 },
  ),
  def(
    'GET_STATEBLOB',
    PTM_CAP_GET_STATEBLOB,
    'RW',
    16 + PTM_STATE_BLOB_SIZE,
    [u32('stateFlags', 0), u32('type', 4), u32('offset', 8)],
    [
      RESULT,
      u32('stateFlags', 4),
      u32('totLength', 8),
      u32('length', 12),
      { name: 'data', type: 'bytes', off: 16, lengthField: 'length', max: PTM_STATE_BLOB_SIZE },
    ],
    { kind: 'atLeast', size: 12 },
  ),
  def(
    'SET_STATEBLOB',
    PTM_CAP_SET_STATEBLOB,
    'RW',
    12 + PTM_STATE_BLOB_SIZE,
    [
      u32('stateFlags', 0),
      u32('type', 4),
      u32('length', 8),
      { name: 'data', type: 'bytes', off: 12, lengthField: 'length', max: PTM_STATE_BLOB_SIZE },
    ],
    [RESULT],
    { kind: 'atLeast', size: 12 },
  ),
  def('STOP', PTM_CAP_STOP, 'R', 4, [], [RESULT], EMPTY),
  def('GET_CONFIG', PTM_CAP_GET_CONFIG, 'R', 8, [], [RESULT, u32('flags', 4)], EMPTY),
  def('SET_DATAFD', PTM_CAP_SET_DATAFD, 'R', 4, [], [RESULT], NONE),
  def(
    'SET_BUFFERSIZE',
    PTM_CAP_SET_BUFFERSIZE,
    'RW',
    16,
    [u32('bufferSize', 0)],
    [RESULT, u32('bufferSize', 4), u32('minSize', 8), u32('maxSize', 12)],
    { kind: 'atLeast', size: 4 },
  ),
  def(
    'GET_INFO',
    PTM_CAP_GET_INFO,
    'RW',
    12 + PTM_GETINFO_SIZE + 4,
    [{ name: 'flags', type: 'u64', off: 0 }, u32('offset', 8), u32('pad', 12)],
    [
      RESULT,
      u32('totLength', 4),
      u32('length', 8),
      { name: 'buffer', type: 'bytes', off: 12, lengthField: 'length', max: PTM_GETINFO_SIZE },
    ],
    { kind: 'atLeast', size: 16 },
  ),
  def('LOCK_STORAGE', PTM_CAP_LOCK_STORAGE, 'RW', 4, [u32('retries', 0)], [RESULT], {
    kind: 'atLeast',
    size: 4,
  }),
];

const BY_CODE = new Map<number, CtrlDef>(CTRL_TABLE.map((d) => [d.code, d]));
const BY_NAME = new Map<CtrlName, CtrlDef>(CTRL_TABLE.map((d) => [d.name, d]));

/** The entry for a socket command code, or undefined (→ TPM_BAD_ORDINAL). */
export function defByCode(code: number): CtrlDef | undefined {
  return BY_CODE.get(code);
}

export function defByName(name: CtrlName): CtrlDef {
  return BY_NAME.get(name)!;
}

/** Minimum request body, as the receive loop and body checks need it. */
export function minBody(d: CtrlDef): number {
  return d.body.kind === 'none' ? 0 : d.body.size;
}

/**
 * Linux `_IOC` number of the PTM_* ioctl (generic layout used by x86_64, aarch64,
 * riscv, s390 and arm): dir in bits 31-30, size 29-16, type 'P' 15-8, nr 7-0.
 */
export function ioctlNumber(d: CtrlDef): number {
  const dir = d.dir === 'R' ? 2 : d.dir === 'W' ? 1 : 3;
  return ((dir << 30) | (d.size << 16) | (0x50 << 8) | d.nr) >>> 0;
}
