/**
 * The `--seccomp` filters compiled at build time: `npm run build` has libseccomp build
 * the programs for `kill` and `log` exactly as {@link installSeccomp} does at run time,
 * exports them (seccomp_export_bpf) and writes them to a JSON file
 * (scripts/seccomp-filters.js). A server start then loads one with a prctl() and a
 * seccomp() call instead of binding libseccomp and having it resolve ~150 names, add
 * ~140 rules and compile them (about 2 ms of a start; docs/performance.md, "Start-up").
 *
 * The file is used only when it was made on this architecture from this very deny list
 * (names and order) and holds sane programs; otherwise the caller has libseccomp build
 * the filter at start-up. A kernel without the filter's action is an error, as it is
 * for libseccomp. Loading is the same as libseccomp's: no new privileges first, then
 * SECCOMP_SET_MODE_FILTER with SECCOMP_FILTER_FLAG_TSYNC, so the filter is on every
 * thread or on none.
 */
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import type { LibraryHandle } from 'koffi';
import { declareOnce, nativeKoffi, nativeLibc } from '../engine/native.js';
import {
  DENIED_SYSCALLS,
  type Libseccomp,
  SCMP_ACT_KILL_PROCESS,
  SCMP_ACT_LOG,
  type SeccompAction,
  SeccompError,
  exportSeccompFilter,
} from './seccomp.js';

type Action = Exclude<SeccompAction, 'none'>;

/** What scripts/seccomp-filters.js writes. */
export interface CompiledFilters {
  /** `process.arch` of the build: the programs check the audit arch and hold its numbers. */
  readonly arch: string;
  /** The seccomp syscall's number on that architecture. */
  readonly seccompNr: number;
  /** DENIED_SYSCALLS when the programs were made. */
  readonly denied: readonly string[];
  /** Each action's program: `struct sock_filter[]` in host byte order, base64. */
  readonly programs: Readonly<Record<Action, string>>;
}

/** linux/prctl.h, linux/seccomp.h. */
const PR_SET_NO_NEW_PRIVS = 38;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_GET_ACTION_AVAIL = 2;
const SECCOMP_FILTER_FLAG_TSYNC = 1;
/** BPF_MAXINSNS: the kernel's limit on a filter's length. */
const MAX_INSTRUCTIONS = 4096;
/** sizeof(struct sock_filter). */
const INSTRUCTION_BYTES = 8;

/**
 * Has libseccomp build both programs (in a temporary file each, which `tempFile`
 * names; it is removed again).
 */
export function compileFilters(lib: Libseccomp, tempFile: string): CompiledFilters {
  const program = (action: Action) => {
    const fd = openSync(tempFile, 'w+', 0o600);
    try {
      exportSeccompFilter(lib, action, fd);
      return readFileSync(tempFile).toString('base64');
    } finally {
      closeSync(fd);
      rmSync(tempFile, { force: true });
    }
  };
  return {
    arch: process.arch,
    seccompNr: lib.resolve('seccomp'),
    denied: [...DENIED_SYSCALLS],
    programs: { kill: program('kill'), log: program('log') },
  };
}

/** The programs of `file` if they can be used here, else undefined (never throws). */
export function readCompiledFilters(file: string): CompiledFilters | undefined {
  let f: CompiledFilters;
  try {
    f = JSON.parse(readFileSync(file, 'latin1')) as CompiledFilters;
  } catch {
    return undefined;
  }
  if (typeof f !== 'object' || f === null) return undefined;
  const sameList =
    Array.isArray(f.denied) &&
    f.denied.length === DENIED_SYSCALLS.length &&
    f.denied.every((name, i) => name === DENIED_SYSCALLS[i]);
  const sane = (p: unknown) => {
    if (typeof p !== 'string') return false;
    const bytes = (p.length / 4) * 3 - (p.endsWith('==') ? 2 : p.endsWith('=') ? 1 : 0);
    return (
      bytes > 0 && bytes % INSTRUCTION_BYTES === 0 && bytes <= MAX_INSTRUCTIONS * INSTRUCTION_BYTES
    );
  };
  const ok =
    f.arch === process.arch &&
    Number.isInteger(f.seccompNr) &&
    f.seccompNr >= 0 &&
    sameList &&
    typeof f.programs === 'object' &&
    f.programs !== null &&
    sane(f.programs.kill) &&
    sane(f.programs.log);
  return ok ? f : undefined;
}

type Func = ReturnType<LibraryHandle['func']>;

interface SeccompLibc {
  readonly prctl: Func;
  readonly syscall: Func;
  readonly strerror: Func;
}

function seccompLibc(): SeccompLibc {
  const libc = nativeLibc();
  return {
    prctl: libc.func(
      'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
    ),
    syscall: libc.func('long syscall(long number, ...)'),
    strerror: libc.func('const char *strerror(int errnum)'),
  };
}

/**
 * Loads `filters`' program for `action` on every thread of the process, or throws
 * {@link SeccompError} having loaded nothing (a kernel without the action, or one that
 * refuses the filter). Every thread the process will ever need must exist already.
 */
export function installCompiledSeccomp(filters: CompiledFilters, action: Action): void {
  const koffi = nativeKoffi();
  const { prctl, syscall, strerror } = declareOnce(seccompLibc);
  const fail = (what: string, errno: number) =>
    new SeccompError(`${what} failed with errno ${errno}: ${strerror(errno) as string}`);
  const nr = filters.seccompNr;
  const uint = 'unsigned int';
  // libseccomp checks this too, before it accepts a rule with the action.
  const act = new Uint32Array([action === 'kill' ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_LOG]);
  if (Number(syscall(nr, uint, SECCOMP_GET_ACTION_AVAIL, uint, 0, 'void *', act)) !== 0) {
    throw fail(`seccomp(SECCOMP_GET_ACTION_AVAIL, ${action})`, koffi.errno());
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) !== 0) {
    throw fail('prctl(PR_SET_NO_NEW_PRIVS)', koffi.errno());
  }
  const program = Buffer.from(filters.programs[action], 'base64');
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
  const ptr = koffi.sizeof('void *');
  const fprog = Buffer.alloc(2 * ptr);
  koffi.encode(fprog, 0, 'uint16_t', program.length / INSTRUCTION_BYTES);
  koffi.encode(fprog, ptr, 'void *', koffi.address(program));
  const tsync = SECCOMP_FILTER_FLAG_TSYNC;
  const rc = Number(syscall(nr, uint, SECCOMP_SET_MODE_FILTER, uint, tsync, 'void *', fprog));
  if (rc < 0) throw fail('seccomp_load', koffi.errno());
  // With TSYNC a positive result is a thread that could not take the filter (none did).
  if (rc > 0) throw new SeccompError(`seccomp_load failed: thread ${rc} could not be synchronised`);
}
