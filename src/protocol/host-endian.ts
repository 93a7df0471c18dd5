/**
 * Whether this machine stores integers little-endian: the byte order of the ioctl
 * (PTM_*), FUSE and libtpms views, and of pcapng's section header. Read from a typed
 * array rather than os.endianness(): node:os is not among the modules Node has loaded
 * when a server starts, and loading it cost every start about 0.3 ms.
 *
 * @example
 * const read32 = (b: Buffer, off: number) =>
 *   HOST_LITTLE_ENDIAN ? b.readUInt32LE(off) : b.readUInt32BE(off);
 */
export const HOST_LITTLE_ENDIAN: boolean = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
