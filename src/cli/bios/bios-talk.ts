/**
 * swtpm_bios' transport (provisioning.md §6.1): every command opens its own connection
 * (character device, TCP or Unix socket), writes the command once, waits for the reply
 * with a timeout, reads once (at most 1024 bytes) and closes. The messages are
 * swtpm_bios', word for word, on stderr.
 */
import { lookup } from 'node:dns/promises';
import { CuseDevice, beforeDeadline } from '../../client/device.js';
import { DeadlineError } from '../../client/exchange.js';
import { type Wire, openWire } from '../../client/wire.js';

/** Where swtpm_bios sends its commands, after its precedence rules. */
export type BiosTarget =
  | { readonly kind: 'device'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

/** sizeof(sockaddr_un.sun_path) on Linux. */
const SUN_PATH_MAX = 108;
/** swtpm_bios' receive buffer. */
const READ_MAX = 1024;

/** C atoi(): leading blanks, a sign, digits; 0 when none; wraps like a 32-bit int. */
export function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? Number(BigInt.asIntN(32, BigInt(m[1]!))) : 0;
}

/**
 * `--tpm-device` > `--tcp` > `--unix` > TCSD_USE_TCP_DEVICE (TCSD_TCP_DEVICE_HOSTNAME,
 * default localhost; TCSD_TCP_DEVICE_PORT through atoi, default 6545) > TPM_DEVICE >
 * /dev/tpm0.
 */
export function chooseTarget(
  o: { device?: string; tcp?: { host: string; port: number }; unix?: string },
  env: NodeJS.ProcessEnv,
): BiosTarget {
  if (o.device !== undefined) return { kind: 'device', path: o.device };
  if (o.tcp !== undefined) return { kind: 'tcp', ...o.tcp };
  if (o.unix !== undefined) return { kind: 'unix', path: o.unix };
  if (env.TCSD_USE_TCP_DEVICE !== undefined) {
    const port = env.TCSD_TCP_DEVICE_PORT;
    return {
      kind: 'tcp',
      host: env.TCSD_TCP_DEVICE_HOSTNAME ?? 'localhost',
      port: port === undefined ? 6545 : atoi(port),
    };
  }
  return { kind: 'device', path: env.TPM_DEVICE ?? '/dev/tpm0' };
}

/** gai_strerror() texts for the failures Node reports by name. */
const GAI_TEXT: Record<string, string> = {
  ENOTFOUND: 'Name or service not known',
  EAI_AGAIN: 'Temporary failure in name resolution',
  EAI_FAIL: 'Non-recoverable failure in name resolution',
  EAI_NODATA: 'No address associated with hostname',
  EAI_MEMORY: 'Memory allocation failure',
};

/** A message for stderr and the failure, or the open connection. */
type Opened = { wire: Wire } | { error: string };

async function openTcp(host: string, port: number): Promise<Opened> {
  let addrs: Array<{ address: string }>;
  try {
    // getaddrinfo(AF_UNSPEC, SOCK_STREAM); glibc refuses an empty node name.
    if (host === '') throw Object.assign(new Error('empty'), { code: 'ENOTFOUND' });
    addrs = await lookup(host, { all: true, verbatim: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const text = GAI_TEXT[code] ?? (e as Error).message;
    return { error: `getaddrinfo failed on host '${host}': ${text}\n` };
  }
  // The port goes to getaddrinfo as "%u" text; glibc keeps its low 16 bits.
  for (const a of addrs) {
    try {
      return { wire: await openWire({ host: a.address, port: port & 0xffff }) };
    } catch {
      // the next address, as swtpm_bios loops over getaddrinfo's list
    }
  }
  return { error: 'Could not connect using TCP socket.\n' };
}

async function openTarget(t: BiosTarget): Promise<Opened> {
  if (t.kind === 'tcp') return openTcp(t.host, t.port);
  if (t.kind === 'unix') {
    if (Buffer.byteLength(t.path) + 1 > SUN_PATH_MAX)
      return { error: 'Socket path is too long.\n' };
    try {
      return { wire: await openWire({ path: t.path }) };
    } catch {
      return { error: 'Could not connect using UnixIO socket.\n' };
    }
  }
  try {
    return { wire: deviceWire(await CuseDevice.open(t.path)) };
  } catch {
    return { error: `Unable to open device '${t.path}'.\n` };
  }
}

/** A character device seen as a Wire: write() and one read() per call. */
function deviceWire(dev: CuseDevice): Wire {
  return {
    write: async (buf) => {
      const n = await dev.write(buf);
      if (n !== buf.length) throw new Error('short write');
    },
    read: async (max, ms) => {
      const deadline = ms === undefined ? undefined : Date.now() + ms;
      try {
        const b = await beforeDeadline(dev.read(max), deadline, () => {});
        return b.length === 0 ? null : b;
      } catch (e) {
        if (e instanceof DeadlineError) return undefined;
        throw e;
      }
    },
    get ended() {
      return dev.closed;
    },
    close: () => void dev.close(),
  };
}

/** The TPM result code, or undefined after a transport failure (already reported). */
export async function talk(
  t: BiosTarget,
  command: Uint8Array,
  seconds: number,
  err: (s: string) => void,
): Promise<Buffer | undefined> {
  const o = await openTarget(t);
  if ('error' in o) {
    err(o.error);
    return undefined;
  }
  const w = o.wire;
  try {
    try {
      await w.write(command);
    } catch {
      err('Write to file descriptor failed.\n');
      return undefined;
    }
    let rsp: Buffer | null | undefined;
    try {
      rsp = await w.read(READ_MAX, seconds * 1000);
    } catch {
      err('Read from file descriptor failed.\n');
      return undefined;
    }
    if (rsp === undefined) {
      err(`TPM did not respond after ${seconds} seconds.\n`);
      return undefined;
    }
    const len = rsp?.length ?? 0;
    if (rsp === null || len < 10) {
      err('Returned packet is too short.\n');
      return undefined;
    }
    if (rsp.readUInt32BE(2) !== len) {
      err('Malformed response.\n');
      return undefined;
    }
    return rsp;
  } finally {
    w.close();
  }
}
