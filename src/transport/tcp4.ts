/**
 * A listening IPv4 TCP socket made with libc calls, for a bind address written as a
 * dotted quad (swtpm's default 127.0.0.1, or 0.0.0.0). node:net's listen() would first
 * load its DNS resolver and cluster modules (and with them child_process and dgram) and
 * take two event-loop turns; on this path a server start is about 4 ms shorter
 * (docs/performance.md, "Start-up"). The socket gets what libuv would give it:
 * SO_REUSEADDR, close-on-exec, and swtpm's backlog of 1. Anything else (IPv6, host
 * names) is left to node:net.
 */
import * as L from './libc.js';

/** `struct sockaddr_in`: family (host order), port and address (network order), padding. */
const SOCKADDR_IN = 16;

/** The four bytes of a dotted quad without leading zeros, or undefined. */
export function parseIpv4(host: string): number[] | undefined {
  const parts = host.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((p) => (/^(0|[1-9]\d{0,2})$/.test(p) ? Number(p) : 256));
  return bytes.every((b) => b <= 255) ? bytes : undefined;
}

/**
 * Binds and listens on `host`:`port` (port 0: the kernel picks one). Returns the fd and
 * the port, or undefined when `host` is not a dotted quad. Throws SysError on failure
 * (EADDRINUSE, EACCES, EADDRNOTAVAIL, ...) with the socket closed.
 */
export function listenTcp4(
  host: string,
  port: number,
  backlog = 1,
): { fd: number; port: number } | undefined {
  const ip = parseIpv4(host);
  if (ip === undefined) return undefined;
  // Plain typed-array stores: the first call of each Buffer method costs a start
  // 0.05-0.1 ms (Node compiles it then), and this runs once per start.
  const addr = new Uint8Array(SOCKADDR_IN);
  addr[0] = L.AF_INET & 0xff; // sa_family_t, little-endian on x86_64 and aarch64
  addr[1] = L.AF_INET >> 8;
  addr[2] = port >> 8;
  addr[3] = port & 0xff;
  addr.set(ip, 4);
  let fd = L.socket(L.SOCK_STREAM, L.AF_INET);
  if (fd < 3) {
    // Never 0-2 (a daemon runs with stdin and stdout closed): as node:net's path does.
    const low = fd;
    fd = L.dupCloexec(low);
    L.close(low);
  }
  try {
    L.setsockoptInt(fd, L.SOL_SOCKET, L.SO_REUSEADDR, 1);
    L.bindAddr(fd, addr);
    L.listen(fd, backlog);
    const bound = L.getsockname(fd, SOCKADDR_IN);
    return { fd, port: (bound[2]! << 8) | bound[3]! };
  } catch (e) {
    L.close(fd);
    throw e;
  }
}
