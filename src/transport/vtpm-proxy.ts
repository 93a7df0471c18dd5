/**
 * Linux vTPM proxy (`linux/vtpm_proxy.h`, runtime-features.md §3): VTPM_PROXY_IOC_NEW_DEV
 * on /dev/vtpmx creates /dev/tpmN (and /dev/tpmrmN for TPM 2) and returns an anonymous
 * fd on which the kernel's TPM commands arrive, one whole command per read() and one
 * whole response per write() (≤ 4096 bytes), with no framing or locality prefix.
 */
import { closeSync, openSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import type koffiModule from 'koffi';
import { requireKoffi } from '../engine/koffi.js';
import { HOST_LITTLE_ENDIAN } from '../protocol/host-endian.js';

type Koffi = typeof koffiModule;

/** `_IOWR(0xa1, 0x00, struct vtpm_proxy_new_dev)` with the 20-byte struct. */
export const VTPM_PROXY_IOC_NEW_DEV = 0xc014a100;
/** `enum vtpm_proxy_flags`: the new chip is a TPM 2 (any other bit: EOPNOTSUPP). */
export const VTPM_PROXY_FLAG_TPM2 = 1;
export const VTPMX_PATH = '/dev/vtpmx';
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** What the kernel returns in `struct vtpm_proxy_new_dev` (five native-endian u32). */
export interface VtpmProxyDevice {
  readonly tpmNum: number;
  readonly fd: number;
  readonly major: number;
  readonly minor: number;
}

/**
 * A failed open of /dev/vtpmx (`syscall` 'open') or ioctl ('ioctl'); `code` is the
 * errno name, `errno` its number.
 */
export class VtpmProxyError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: 'open' | 'ioctl';
  constructor(syscall: 'open' | 'ioctl', errno: number) {
    const code = getSystemErrorName(-errno);
    super(`${syscall === 'open' ? `open ${VTPMX_PATH}` : 'VTPM_PROXY_IOC_NEW_DEV'}: ${code}`);
    this.name = 'VtpmProxyError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

/**
 * Opens /dev/vtpmx, asks for a new proxy device and closes /dev/vtpmx again. Needs
 * CAP_SYS_ADMIN (EPERM otherwise). The device stays until the last reference to the
 * returned fd is gone: a read() pending in the thread pool is one, so only the end of
 * the process reliably removes it (§3.8).
 *
 * @example
 * const dev = createVtpmProxy(true);
 * fs.writeSync(1, `New TPM device: /dev/tpm${dev.tpmNum} (major/minor = ${dev.major}/${dev.minor})\n`);
 */
export function createVtpmProxy(tpm2: boolean, vtpmx = VTPMX_PATH): VtpmProxyDevice {
  let ctl: number;
  try {
    ctl = openSync(vtpmx, 'r+');
  } catch (err) {
    throw new VtpmProxyError('open', Math.abs((err as NodeJS.ErrnoException).errno ?? 5));
  }
  try {
    const koffi = requireKoffi();
    const libc = koffi.load('libc.so.6');
    // ioctl and fcntl are variadic; a fixed third argument passes the same registers on
    // x86_64 and aarch64. The Buffer is passed as its own memory: the kernel's copy-out
    // lands in it.
    const ioctl = libc.func('int ioctl(int, unsigned long, void *)') as (
      fd: number,
      req: number,
      arg: Buffer,
    ) => number;
    const fcntl = libc.func('int fcntl(int, int, int)') as (
      fd: number,
      cmd: number,
      arg: number,
    ) => number;
    const arg = Buffer.alloc(20);
    const le = HOST_LITTLE_ENDIAN;
    const u32 = (off: number) => (le ? arg.readUInt32LE(off) : arg.readUInt32BE(off));
    if (le) arg.writeUInt32LE(tpm2 ? VTPM_PROXY_FLAG_TPM2 : 0, 0);
    else arg.writeUInt32BE(tpm2 ? VTPM_PROXY_FLAG_TPM2 : 0, 0);
    if (ioctl(ctl, VTPM_PROXY_IOC_NEW_DEV, arg) < 0)
      throw new VtpmProxyError('ioctl', koffi.errno());
    const fd = u32(8);
    // The kernel installs the fd without FD_CLOEXEC (observed); a child that inherited
    // it would keep /dev/tpmN alive after we exit.
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return { tpmNum: u32(4), fd, major: u32(12), minor: u32(16) };
  } finally {
    closeSync(ctl);
  }
}
