/**
 * swtpm's seccomp profile (`--seccomp action=none|kill|log`) for a Node.js process,
 * through libseccomp (Debian `libseccomp2`, `libseccomp.so.2`) and koffi.
 *
 * Why libseccomp rather than a hand-built BPF program: it is what swtpm uses, so the
 * syscall names below resolve to exactly the numbers swtpm's profile denies on every
 * architecture (names a platform lacks are skipped, as swtpm's build skips them), and
 * it adds the architecture check and `PR_SET_NO_NEW_PRIVS` the same way. The package
 * is already on every Debian system (apt depends on it).
 *
 * Differences from swtpm, both because a Node process has many threads (V8 platform
 * workers, libuv's thread pool): the filter is synchronised onto every thread
 * (`SCMP_FLTATR_CTL_TSYNC`), and `kill` is `SCMP_ACT_KILL_PROCESS`: swtpm's
 * `SCMP_ACT_KILL` ends only the calling thread, which leaves a Node process hung.
 */
import type koffiModule from 'koffi';
import { requireKoffi } from '../engine/koffi.js';

type Koffi = typeof koffiModule;

/** `--seccomp action=`: none installs nothing. */
export type SeccompAction = 'none' | 'kill' | 'log';

/** libseccomp's action values (seccomp.h), equal to the kernel's SECCOMP_RET_*. */
export const SCMP_ACT_KILL_PROCESS = 0x80000000;
export const SCMP_ACT_LOG = 0x7ffc0000;
export const SCMP_ACT_ALLOW = 0x7fff0000;

/** enum scmp_filter_attr (seccomp.h). */
const SCMP_FLTATR_ACT_BADARCH = 2;
const SCMP_FLTATR_CTL_TSYNC = 4;

/**
 * The syscalls swtpm (0.8 … master, `src/swtpm/seccomp_profile.c`) denies outside
 * CUSE, in its groups. Its entries that never take effect are left out: `sysctl`
 * (libseccomp names it `_sysctl`) and the misspelt `copy_filerange`. Names that do
 * not exist on this architecture (the 32-bit `*_time64` calls, the x86 legacy calls
 * on aarch64) resolve to a negative number and are skipped, as in swtpm.
 */
export const DENIED_SYSCALLS: readonly string[] = [
  // high concern
  'capset',
  'pivot_root',
  'chroot',
  'settimeofday',
  'clock_adjtime',
  'clock_settime',
  'clock_settime64',
  'adjtimex',
  'mount',
  'umount2',
  'fsmount',
  'move_mount',
  'swapon',
  'swapoff',
  'reboot',
  'tgkill',
  'kexec_load',
  'unshare',
  'setns',
  'kcmp',
  'init_module',
  'finit_module',
  'delete_module',
  'seccomp',
  'kexec_file_load',
  'fsopen',
  'fsconfig',
  'fspick',
  'mount_setattr',
  'open_tree',
  // SysV IPC and POSIX message queues
  'semget',
  'semop',
  'shmget',
  'shmat',
  'shmctl',
  'shmdt',
  'msgget',
  'msgsnd',
  'msgrcv',
  'msgctl',
  'mq_open',
  'mq_unlink',
  'mq_timedsend',
  'mq_timedreceive',
  'mq_notify',
  'mq_getsetattr',
  // misc
  'ptrace',
  'syslog',
  'capget',
  'sigaltstack',
  'personality',
  'sysfs',
  'getpriority',
  'setpriority',
  'sched_setparam',
  'sched_setscheduler',
  'sched_setaffinity',
  'vhangup',
  'sethostname',
  'setdomainname',
  'quotactl',
  'quotactl_fd',
  'readahead',
  'lookup_dcookie',
  'add_key',
  'request_key',
  'keyctl',
  'inotify_init',
  'inotify_init1',
  'inotify_add_watch',
  'inotify_rm_watch',
  'splice',
  'tee',
  'vmsplice',
  'signalfd',
  'eventfd',
  'timerfd_settime',
  'timer_settime64',
  'timerfd_settime64',
  'timerfd_gettime',
  'signalfd4',
  'eventfd2',
  'fanotify_init',
  'fanotify_mark',
  'mknod',
  'mknodat',
  'acct',
  'prlimit64',
  'setrlimit',
  'bpf',
  // extended attributes
  'setxattr',
  'lsetxattr',
  'fsetxattr',
  'getxattr',
  'lgetxattr',
  'fgetxattr',
  'listxattr',
  'llistxattr',
  'flistxattr',
  'removexattr',
  'lremovexattr',
  'fremovexattr',
  // exec
  'execve',
  // I/O
  'iopl',
  'ioperm',
  'io_setup',
  'io_destroy',
  'io_getevents',
  'io_submit',
  'io_cancel',
  'ioprio_set',
  'ioprio_get',
  // obsolete
  'create_module',
  'get_kernel_syms',
  'query_module',
  'uselib',
  'nfsservctl',
  'getpmsg',
  'putpmsg',
  'afs_syscall',
  'tuxcall',
  'security',
  'set_thread_area',
  'get_thread_area',
  'epoll_ctl_old',
  'epoll_wait_old',
  'vserver',
  // credentials
  'setuid',
  'setgid',
  'setpgid',
  'setsid',
  'setreuid',
  'setregid',
  'setgroups',
  'setresuid',
  'setresgid',
  'setfsuid',
  'setfsgid',
  // swtpm leaves these out for CUSE (libfuse and glib start threads); tswtpm's CUSE
  // front end starts none after the filter, so it denies them there too.
  'clone',
  'fork',
  'vfork',
  'prctl',
  'clone3',
  'sched_setattr',
];

/** A failure to build or load the filter; the message is swtpm's. */
export class SeccompError extends Error {
  readonly code = 'SECCOMP_FAILED' as const;
  constructor(message: string) {
    super(message);
    this.name = 'SeccompError';
  }
}

export interface Libseccomp {
  init: (defAction: number) => bigint | null;
  attrSet: (ctx: bigint, attr: number, value: number) => number;
  resolve: (name: string) => number;
  ruleAdd: (ctx: bigint, action: number, nr: number, argCnt: number, args: null) => number;
  load: (ctx: bigint) => number;
  exportBpf: (ctx: bigint, fd: number) => number;
  release: (ctx: bigint) => void;
  strerror: (errno: number) => string;
}

/**
 * Binds libseccomp. Throws when `libseccomp.so.2` cannot be loaded. Callers keep the
 * result (the CLI loads it before a chroot, when the library file is still reachable).
 */
export function loadLibseccomp(): Libseccomp {
  const koffi = requireKoffi();
  const lib = koffi.load('libseccomp.so.2');
  const libc = koffi.load('libc.so.6');
  return {
    init: lib.func('void *seccomp_init(uint32_t def_action)'),
    attrSet: lib.func('int seccomp_attr_set(void *ctx, int attr, uint32_t value)'),
    resolve: lib.func('int seccomp_syscall_resolve_name(const char *name)'),
    ruleAdd: lib.func(
      'int seccomp_rule_add_array(void *ctx, uint32_t action, int syscall, unsigned int arg_cnt, const void *arg_array)',
    ),
    load: lib.func('int seccomp_load(void *ctx)'),
    exportBpf: lib.func('int seccomp_export_bpf(void *ctx, int fd)'),
    release: lib.func('void seccomp_release(void *ctx)'),
    strerror: libc.func('const char *strerror(int errnum)'),
  };
}

/** The syscall numbers the profile denies on this architecture, in list order. */
export function deniedNumbers(lib: Libseccomp): number[] {
  const out: number[] = [];
  for (const name of DENIED_SYSCALLS) {
    const nr = lib.resolve(name);
    // -1 is __NR_SCMP_ERROR (unknown name); other negatives are libseccomp's
    // pseudo-numbers for calls this architecture does not have.
    if (nr >= 0 && !out.includes(nr)) out.push(nr);
  }
  return out;
}

/**
 * Installs the deny list on every thread of the process. `action` must not be
 * `none`. Every thread the process will ever need must exist already (the filter
 * denies clone); see sandbox/threads.ts. A server normally loads the same program
 * compiled at build time instead (sandbox/seccomp-compiled.ts).
 *
 * @example
 * installSeccomp(loadLibseccomp(), 'kill'); // /proc/self/status: Seccomp: 2
 */
export function installSeccomp(lib: Libseccomp, action: Exclude<SeccompAction, 'none'>): void {
  withFilter(lib, action, (ctx, fail) => {
    const rc = lib.load(ctx);
    if (rc < 0) throw fail('seccomp_load', rc);
  });
}

/**
 * Writes the BPF program that {@link installSeccomp} would load for `action` to `fd`
 * (an array of `struct sock_filter` in host byte order), without loading it.
 */
export function exportSeccompFilter(
  lib: Libseccomp,
  action: Exclude<SeccompAction, 'none'>,
  fd: number,
): void {
  withFilter(lib, action, (ctx, fail) => {
    const rc = lib.exportBpf(ctx, fd);
    if (rc < 0) throw fail('seccomp_export_bpf', rc);
  });
}

/** Builds the filter for `action` in a libseccomp context, hands it to `use`, frees it. */
function withFilter(
  lib: Libseccomp,
  action: Exclude<SeccompAction, 'none'>,
  use: (ctx: bigint, fail: (what: string, rc: number) => SeccompError) => void,
): void {
  const act = action === 'kill' ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_LOG;
  const ctx = lib.init(SCMP_ACT_ALLOW);
  if (!ctx) throw new SeccompError('seccomp_init failed');
  const fail = (what: string, rc: number) =>
    new SeccompError(`${what} failed with errno ${-rc}: ${lib.strerror(-rc)}`);
  try {
    let rc = lib.attrSet(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc < 0) throw fail('seccomp_attr_set(TSYNC)', rc);
    // A call through another ABI (i386 int 0x80, x32) would bypass the number checks.
    rc = lib.attrSet(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc < 0) throw fail('seccomp_attr_set(BADARCH)', rc);
    for (const nr of deniedNumbers(lib)) {
      rc = lib.ruleAdd(ctx, act, nr, 0, null);
      if (rc < 0) throw fail('seccomp_rule_add', rc);
    }
    use(ctx, fail);
  } finally {
    lib.release(ctx);
  }
}
