import { requireKoffi } from '../../engine/koffi.js';
/**
 * Process hardening for the TPM server (`tswtpm socket|chardev|cuse`), which holds the
 * TPM's seeds and the state keys in its memory:
 *
 * - Node opens its inspector (a debugger that runs any code in the process) on
 *   127.0.0.1:9229 when it gets SIGUSR1, or at start with `--inspect*` in the command
 *   line or NODE_OPTIONS. Any local process of the same uid could then read the keys.
 *   bin/tswtpm.js installs a SIGUSR1 listener first thing (a JS listener replaces
 *   Node's trigger; the signal is then ignored), and {@link refuseInspector} stops a
 *   start with an inspector active or requested.
 * - {@link setNotDumpable}: prctl(PR_SET_DUMPABLE, 0): no core dump, no ptrace and no
 *   /proc/PID/{mem,environ,fd} for processes of the same uid (root keeps access).
 *
 * docs/compat.md ("Hardening") records what differs from swtpm.
 */
import { builtin } from '../../node-builtins.js';
import { CliError } from './subopts.js';

/** Node options that open the inspector, or dump the heap on a signal. */
const DEBUG_FLAG = /^--(inspect|debug|heapsnapshot-signal)/;

/**
 * Throws a CliError when an inspector is active or was requested through the
 * command line (`execArgv`) or NODE_OPTIONS.
 */
export function refuseInspector(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
  inspectorUrl: string | undefined = activeInspector(),
): void {
  const fromEnv = (nodeOptions ?? '').split(/\s+/).filter((a) => DEBUG_FLAG.test(a));
  const fromArgv = execArgv.filter((a) => DEBUG_FLAG.test(a));
  const why = [...fromArgv, ...fromEnv.map((a) => `NODE_OPTIONS ${a}`)];
  if (inspectorUrl !== undefined) why.push(`an inspector is listening at ${inspectorUrl}`);
  if (why.length > 0) {
    throw new CliError(
      `Error: refusing to run the TPM with a debugger enabled (${why.join(', ')}): it could read the TPM's secrets`,
    );
  }
}

/** The URL of the process's open inspector, or undefined when none is open. */
function activeInspector(): string | undefined {
  // node:inspector's url() reads Node's built-in inspector binding, but loading the
  // module costs a server start about 4 ms (it brings in worker_threads and streams).
  // The binding itself is still reachable through process.binding(), which Node
  // deprecates in the documentation only; with --pending-deprecation it would print a
  // warning, so then (and wherever the binding is missing) the public module is used.
  const pending = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (!pending.includes('--pending-deprecation')) {
    try {
      const binding = (process as unknown as { binding(name: string): { url(): unknown } }).binding(
        'inspector',
      );
      const url = binding.url();
      return typeof url === 'string' ? url : undefined;
    } catch {
      // (no such binding in this Node): the module below
    }
  }
  return builtin('node:inspector').url();
}

/** prctl(2) option (linux/prctl.h). */
const PR_SET_DUMPABLE = 4;
const PR_GET_DUMPABLE = 3;

/**
 * Marks the process non-dumpable. Returns false where prctl is not available (the
 * server still runs). The process itself keeps access to /proc/self.
 */
export function setNotDumpable(): boolean {
  try {
    const koffi = requireKoffi();
    const prctl = koffi
      .load('libc.so.6')
      .func(
        'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
      );
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) === 0 && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) === 0;
  } catch {
    return false;
  }
}
