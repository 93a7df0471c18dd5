/**
 * The data and control channels of `--server`, `--ctrl` and `--fd` as listen options,
 * listeners and given fds, with swtpm's messages for what cannot be opened.
 */
import { fstatSync } from 'node:fs';
import type { Conn, ConnServer } from '../../transport/conn.js';
import {
  DATA_READ_SIZE,
  isTcpSocket,
  listen,
  servableSocket,
  streamConn,
} from '../../transport/stream.js';
import { CliError } from '../common/subopts.js';
import { errText } from '../common/sys.js';
import type { ChannelConfig } from './args.js';

/** Character devices and ptys (node:tty and fs streams) are loaded only when served. */
export const loadCharConn = () => import('../../transport/char-conn.js');

export function listenOptions(c: ChannelConfig, what: 'server' | 'ctrl') {
  if (c.type === 'unixio') {
    if (c.fd !== undefined) return { fd: c.fd, bufferSize: readSize(what) };
    if (c.path === undefined) {
      throw new CliError('Missing path and file descriptor option for UnixIO socket');
    }
    return {
      path: checkSunPath(c.path),
      mode: c.mode ?? 0o770,
      uid: c.uid,
      gid: c.gid,
      bufferSize: readSize(what),
    };
  }
  if (c.fd !== undefined) return { fd: c.fd, bufferSize: readSize(what), tcp: isTcpSocket(c.fd) };
  let port = c.port;
  if (port === undefined && what === 'server' && process.env.TPM_PORT !== undefined) {
    port = Number.parseInt(process.env.TPM_PORT, 10);
  }
  // swtpm's messages: a missing or negative port, then one above 65535.
  if (port === undefined || !Number.isInteger(port) || port < 0) {
    throw new CliError(
      what === 'server'
        ? 'No valid port number provided for TCP socket.'
        : 'Missing port and fd options for TCP control channel',
    );
  }
  if (port > 65535) {
    throw new CliError(
      what === 'server'
        ? 'TCP socket port outside valid range'
        : 'TCP control channel port outside valid range',
    );
  }
  return { port, host: c.bindaddr ?? '127.0.0.1', bufferSize: readSize(what) };
}

/**
 * Bytes per read of an accepted client: a TPM command's (swtpm's 4096 + 9); on a TCP
 * control channel 64 KiB, node:net's read size, so that an 18 KB SET_STATEBLOB arrives
 * in one read instead of five event-loop turns (the session reassembles any split).
 */
const CTRL_READ_SIZE = 65536;
const readSize = (what: 'server' | 'ctrl'): number =>
  what === 'ctrl' ? CTRL_READ_SIZE : DATA_READ_SIZE;

/** `--server type=tcp,fd=N` / `--fd N`: an already-connected socket or a character device. */
export async function connectedFd(fd: number): Promise<() => Conn> {
  const st = fstatSync(fd);
  if (st.isSocket()) {
    if (!servableSocket(fd))
      throw new CliError(`File descriptor ${fd} is not a stream or datagram socket.`);
    const tcp = isTcpSocket(fd);
    return () => streamConn(fd, { tcp });
  }
  if (st.isCharacterDevice()) {
    const { charDeviceConn } = await loadCharConn();
    return () => charDeviceConn(fd);
  }
  throw new CliError(`File descriptor ${fd} is not a socket or character device.`);
}

/** sockaddr_un.sun_path: 108 bytes including the terminating NUL. */
const SUN_PATH_SIZE = 108;

/**
 * Node's listen() silently truncates a longer path (and binds the truncated name);
 * swtpm refuses it with this message (its spelling).
 */
export function checkSunPath(path: string): string {
  if (Buffer.byteLength(path) >= SUN_PATH_SIZE) {
    throw new CliError('Path for UnioIO socket is too long');
  }
  return path;
}

export async function listenChecked(
  c: ChannelConfig,
  o: Parameters<typeof listen>[0],
): Promise<ConnServer> {
  try {
    return await listen(o);
  } catch (err) {
    throw listenError(c, err);
  }
}

/**
 * swtpm's messages for a TCP socket that cannot be opened and for a Unix socket whose
 * ownership cannot be changed; others as they are.
 */
export function listenError(c: ChannelConfig, err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (c.type === 'tcp' && /^E[A-Z]+$/.test(e.code ?? '')) {
    return new CliError(`Could not open TCP socket: ${errText(e)}`);
  }
  if (e.syscall !== 'chown' && !/^chown/.test(e.message ?? '')) return err;
  // swtpm prints uid_t/gid_t -1 ("leave as is") unsigned.
  const id = (v: number | undefined) => (v === undefined || v < 0 ? 0xffffffff : v);
  return new CliError(
    `Could not change ownership of UnixIO socket to ${id(c.uid)}:${id(c.gid)} ${errText(e)}`,
  );
}
