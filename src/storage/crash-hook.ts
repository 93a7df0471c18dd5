import type { StateName } from '../engine/types.js';

/**
 * Test-only crash injection for the directory backend. With
 * `TSWTPM_TEST_KILL_AFTER_STEP=<name>:<n>` in the environment (e.g. `permall:3`), the
 * process SIGKILLs itself right after the n-th step (counted from 1) of the first
 * write of state blob `<name>` that gets that far. The steps of one write are, in
 * order: temp-created, temp-written, [temp-synced], temp-closed, [backup-linked,
 * backup-renamed], renamed, [dir-synced] (bracketed ones only with `fsync` / `backup`).
 *
 * Without the variable the backend gets no hook and each step costs one `undefined`
 * check. Used by test/integration/state-crash-steps.test.ts.
 */
export const KILL_AFTER_STEP_ENV = 'TSWTPM_TEST_KILL_AFTER_STEP';

/** Called by the backend after each completed step of a state write. */
export type WriteStepHook = (name: StateName, step: number, label: string) => void;

/**
 * The hook `env` asks for, or undefined (the normal case).
 *
 * @example const onWriteStep = crashHookFromEnv(process.env);
 */
export function crashHookFromEnv(
  env: Record<string, string | undefined> = process.env,
): WriteStepHook | undefined {
  const spec = env[KILL_AFTER_STEP_ENV];
  if (spec === undefined || spec === '') return undefined;
  const m = /^(permall|volatilestate|savestate):([1-9][0-9]*)$/.exec(spec);
  if (m === null) throw new Error(`${KILL_AFTER_STEP_ENV}: expected <name>:<step>, got '${spec}'`);
  const name = m[1] as StateName;
  const n = Number(m[2]);
  return (blob, step) => {
    if (blob === name && step === n) process.kill(process.pid, 'SIGKILL');
  };
}
