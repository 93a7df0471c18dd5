/**
 * The environment the benchmarks give the processes they start.
 *
 * `NODE_EXTRA_CA_CERTS` makes Node 20 parse that certificate file at the start of every
 * process, before any JavaScript runs. On these machines it names the system bundle
 * (~140 certificates): `node -e 0` then takes 115–160 ms instead of 41–68 ms, and the
 * parse varies by more than most start-up differences being measured. A vTPM never
 * runs with it (systemd services, libvirt and QEMU do not set it), and the extra time
 * is the same for every Node process, so it tells nothing about tswtpm.
 *
 * Each bench entry point calls {@link benchEnvironment} first: the variable is then
 * removed from this process' environment, so every child (`node -e 0`, tswtpm, swtpm,
 * the floor servers) starts without it. `TSWTPM_BENCH_KEEP_ENV=1` keeps the environment
 * as it is (docs/performance.md, "Noise").
 */

/** Variables that change how long any Node process takes to start. */
export const START_UP_VARIABLES = ['NODE_EXTRA_CA_CERTS'] as const;

/**
 * Removes {@link START_UP_VARIABLES} from `env` (default: this process' environment)
 * unless `TSWTPM_BENCH_KEEP_ENV=1`; returns the names it removed.
 */
export function benchEnvironment(env: NodeJS.ProcessEnv = process.env): string[] {
  // (`npm run bench -- --pin` runs itself again under taskset: the parent's removals)
  const before = env[REMOVED_BY_PARENT]?.split(',').filter((k) => k !== '') ?? [];
  if (env.TSWTPM_BENCH_KEEP_ENV === '1') return before;
  const removed = START_UP_VARIABLES.filter((k) => env[k] !== undefined);
  for (const k of removed) delete env[k];
  return [...new Set([...before, ...removed])];
}

/** Set by a bench that starts another copy of itself: what it removed. */
export const REMOVED_BY_PARENT = 'TSWTPM_BENCH_ENV_REMOVED';

/** One line for a report: what the children's environment was. */
export function environmentNote(removed: readonly string[]): string {
  return removed.length === 0
    ? 'environment: inherited unchanged'
    : `environment: ${removed.join(', ')} removed for every process started (TSWTPM_BENCH_KEEP_ENV=1 keeps it)`;
}
