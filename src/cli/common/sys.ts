import type { Koffi } from '../../engine/koffi.js';
import { declareOnce, nativeLibc } from '../../engine/native.js';
/**
 * libc through koffi for tswtpm_ioctl: strerror(), so messages match glibc's text,
 * not libuv's. koffi is loaded on first use only. (ioctl() on a CUSE device lives in
 * transport/chardev.ts, shared with the client library.)
 */
import { builtin } from '../../node-builtins.js';

interface Libc {
  koffi: Koffi;
  strerror: (errno: number) => string;
}

/** Bound once per process (engine/native.ts). */
function declareLibc(koffi: Koffi): Libc {
  return {
    koffi,
    strerror: nativeLibc().func('const char *strerror(int)') as unknown as Libc['strerror'],
  };
}

function lib(): Libc {
  return declareOnce(declareLibc);
}

let errnoNumbers: Readonly<Record<string, number>> | undefined;
/**
 * os.constants.errno, loaded on first use: node:os is not otherwise loaded by a server
 * start, and loading it cost every start about 0.3 ms (it is only needed for errors).
 */
function errnoNumber(name: string): number | undefined {
  errnoNumbers ??= builtin('node:os').constants.errno as Readonly<Record<string, number>>;
  return errnoNumbers[name];
}

/** glibc's strerror() of an errno number or an errno name (`'ECONNREFUSED'`). */
export function strerror(e: number | string): string {
  const n = typeof e === 'number' ? e : errnoNumber(e);
  if (n === undefined) return String(e);
  return lib().strerror(n);
}

/** The glibc text of a Node/transport error: by `code`, else its message. */
export function errText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && errnoNumber(code) !== undefined) return strerror(code);
  return e instanceof Error ? e.message : String(e);
}

/** gai_strerror() texts for the codes Node reports from getaddrinfo(). */
const GAI: Readonly<Record<string, string>> = {
  ENOTFOUND: 'Name or service not known',
  EAI_AGAIN: 'Temporary failure in name resolution',
  EAI_FAIL: 'Non-recoverable failure in name resolution',
  EAI_FAMILY: 'ai_family not supported',
  EAI_MEMORY: 'Memory allocation failure',
  EAI_SERVICE: 'Servname not supported for ai_socktype',
  EAI_NODATA: 'No address associated with hostname',
  EAI_SYSTEM: 'System error',
};

export function gaiText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code ?? '';
  return GAI[code] ?? errText(e);
}
