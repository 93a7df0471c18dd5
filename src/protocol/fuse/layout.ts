/**
 * Wire facts of the FUSE/CUSE kernel protocol as Linux's uapi `linux/fuse.h` defines
 * them (protocol 7.38, kernel 6.1; the structs used here have not changed since 7.23).
 * Every struct is host-endian. Names are the C names, so the layout test can print
 * `offsetof()`/`sizeof()` for each entry from the real header and compare.
 */

/** `FUSE_KERNEL_VERSION`: the only major the kernel speaks. */
export const FUSE_KERNEL_VERSION = 7;
/** The minor whose layouts this codec implements; replies carry min(kernel's, this). */
export const FUSE_KERNEL_MINOR_VERSION = 38;
/** The kernel refuses a CUSE_INIT reply with a smaller minor (fs/fuse/cuse.c). */
export const CUSE_MIN_MINOR = 11;

/** Opcodes (enum fuse_opcode) that reach a CUSE server. */
export const FUSE_OPEN = 14;
export const FUSE_READ = 15;
export const FUSE_WRITE = 16;
export const FUSE_RELEASE = 18;
export const FUSE_FSYNC = 20;
export const FUSE_FLUSH = 25;
export const FUSE_INTERRUPT = 36;
export const FUSE_IOCTL = 39;
export const FUSE_POLL = 40;
export const CUSE_INIT = 4096;

export const OPCODE_NAMES: Readonly<Record<number, string>> = {
  [FUSE_OPEN]: 'FUSE_OPEN',
  [FUSE_READ]: 'FUSE_READ',
  [FUSE_WRITE]: 'FUSE_WRITE',
  [FUSE_RELEASE]: 'FUSE_RELEASE',
  [FUSE_FSYNC]: 'FUSE_FSYNC',
  [FUSE_FLUSH]: 'FUSE_FLUSH',
  [FUSE_INTERRUPT]: 'FUSE_INTERRUPT',
  [FUSE_IOCTL]: 'FUSE_IOCTL',
  [FUSE_POLL]: 'FUSE_POLL',
  [CUSE_INIT]: 'CUSE_INIT',
};

/** cuse_init_in/out.flags: the server wants unrestricted ioctls (RETRY with iovecs). */
export const CUSE_UNRESTRICTED_IOCTL = 1;
export const CUSE_INIT_INFO_MAX = 4096;

export const FUSE_IOCTL_COMPAT = 1;
export const FUSE_IOCTL_UNRESTRICTED = 2;
export const FUSE_IOCTL_RETRY = 4;
export const FUSE_IOCTL_32BIT = 8;
export const FUSE_IOCTL_DIR = 16;
export const FUSE_IOCTL_MAX_IOV = 256;

export const FOPEN_DIRECT_IO = 1;
export const FOPEN_NONSEEKABLE = 4;
export const FOPEN_STREAM = 16;

export const FUSE_READ_LOCKOWNER = 2;
export const FUSE_WRITE_LOCKOWNER = 2;
export const FUSE_POLL_SCHEDULE_NOTIFY = 1;

/**
 * A read() of the device smaller than this fails with EINVAL (the request stays
 * queued): max(FUSE_MIN_READ_BUFFER, in header + write_in + max_write).
 */
export const FUSE_MIN_READ_BUFFER = 8192;

/** One struct: its size and, per C field name, [offset, size]. */
export interface StructLayout {
  readonly name: string;
  readonly size: number;
  readonly fields: Readonly<Record<string, readonly [number, number]>>;
}

function struct(
  name: string,
  size: number,
  fields: Record<string, readonly [number, number]>,
): StructLayout {
  return { name, size, fields };
}

export const fuse_in_header = struct('fuse_in_header', 40, {
  len: [0, 4],
  opcode: [4, 4],
  unique: [8, 8],
  nodeid: [16, 8],
  uid: [24, 4],
  gid: [28, 4],
  pid: [32, 4],
  // 7.37 split the old u32 padding; always 0 for CUSE.
  total_extlen: [36, 2],
  padding: [38, 2],
});

export const fuse_out_header = struct('fuse_out_header', 16, {
  len: [0, 4],
  error: [4, 4],
  unique: [8, 8],
});

export const cuse_init_in = struct('cuse_init_in', 16, {
  major: [0, 4],
  minor: [4, 4],
  unused: [8, 4],
  flags: [12, 4],
});

export const cuse_init_out = struct('cuse_init_out', 72, {
  major: [0, 4],
  minor: [4, 4],
  unused: [8, 4],
  flags: [12, 4],
  max_read: [16, 4],
  max_write: [20, 4],
  dev_major: [24, 4],
  dev_minor: [28, 4],
  spare: [32, 40],
});

export const fuse_open_in = struct('fuse_open_in', 8, { flags: [0, 4], open_flags: [4, 4] });

export const fuse_open_out = struct('fuse_open_out', 16, {
  fh: [0, 8],
  open_flags: [8, 4],
  padding: [12, 4],
});

export const fuse_release_in = struct('fuse_release_in', 24, {
  fh: [0, 8],
  flags: [8, 4],
  release_flags: [12, 4],
  lock_owner: [16, 8],
});

export const fuse_read_in = struct('fuse_read_in', 40, {
  fh: [0, 8],
  offset: [8, 8],
  size: [16, 4],
  read_flags: [20, 4],
  lock_owner: [24, 8],
  flags: [32, 4],
  padding: [36, 4],
});

export const fuse_write_in = struct('fuse_write_in', 40, {
  fh: [0, 8],
  offset: [8, 8],
  size: [16, 4],
  write_flags: [20, 4],
  lock_owner: [24, 8],
  flags: [32, 4],
  padding: [36, 4],
});

export const fuse_write_out = struct('fuse_write_out', 8, { size: [0, 4], padding: [4, 4] });

export const fuse_ioctl_in = struct('fuse_ioctl_in', 32, {
  fh: [0, 8],
  flags: [8, 4],
  cmd: [12, 4],
  arg: [16, 8],
  in_size: [24, 4],
  out_size: [28, 4],
});

export const fuse_ioctl_out = struct('fuse_ioctl_out', 16, {
  result: [0, 4],
  flags: [4, 4],
  in_iovs: [8, 4],
  out_iovs: [12, 4],
});

export const fuse_ioctl_iovec = struct('fuse_ioctl_iovec', 16, { base: [0, 8], len: [8, 8] });

export const fuse_poll_in = struct('fuse_poll_in', 24, {
  fh: [0, 8],
  kh: [8, 8],
  flags: [16, 4],
  events: [20, 4],
});

export const fuse_poll_out = struct('fuse_poll_out', 8, { revents: [0, 4], padding: [4, 4] });

export const fuse_interrupt_in = struct('fuse_interrupt_in', 8, { unique: [0, 8] });

/** Every struct this codec reads or writes (the layout test walks this list). */
export const LAYOUTS: readonly StructLayout[] = [
  fuse_in_header,
  fuse_out_header,
  cuse_init_in,
  cuse_init_out,
  fuse_open_in,
  fuse_open_out,
  fuse_release_in,
  fuse_read_in,
  fuse_write_in,
  fuse_write_out,
  fuse_ioctl_in,
  fuse_ioctl_out,
  fuse_ioctl_iovec,
  fuse_poll_in,
  fuse_poll_out,
  fuse_interrupt_in,
];

/** Constants with their C names, compared against the header's values. */
export const CONSTANTS: Readonly<Record<string, number>> = {
  FUSE_KERNEL_VERSION,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_OPEN,
  FUSE_READ,
  FUSE_WRITE,
  FUSE_RELEASE,
  FUSE_FSYNC,
  FUSE_FLUSH,
  FUSE_INTERRUPT,
  FUSE_IOCTL,
  FUSE_POLL,
  CUSE_INIT,
  CUSE_UNRESTRICTED_IOCTL,
  CUSE_INIT_INFO_MAX,
  FUSE_IOCTL_COMPAT,
  FUSE_IOCTL_UNRESTRICTED,
  FUSE_IOCTL_RETRY,
  FUSE_IOCTL_32BIT,
  FUSE_IOCTL_DIR,
  FUSE_IOCTL_MAX_IOV,
  FOPEN_DIRECT_IO,
  FOPEN_NONSEEKABLE,
  FOPEN_STREAM,
  FUSE_READ_LOCKOWNER,
  FUSE_WRITE_LOCKOWNER,
  FUSE_POLL_SCHEDULE_NOTIFY,
  FUSE_MIN_READ_BUFFER,
};
