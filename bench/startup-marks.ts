/**
 * Preloaded into a tswtpm server by bench/startup-breakdown.ts (`node --import` this
 * file): writes every start-up step the server publishes on `tswtpm:startup`
 * (src/cli/server/startup-trace.ts) to stderr as one line `tswtpm-startup <json>`,
 * plus a first line for the moment this preload runs (Node itself has started). Each
 * line adds `cpu`: the process' CPU time so far (user + system, all threads, ms), which
 * other processes on a busy machine disturb far less than the wall-clock time.
 */
import { channel } from 'node:diagnostics_channel';
import { writeSync } from 'node:fs';
import { STARTUP_CHANNEL } from '../src/cli/server/startup-trace.js';

const line = (m: unknown) => {
  const { user, system } = process.cpuUsage();
  writeSync(
    2,
    `tswtpm-startup ${JSON.stringify({ ...(m as object), cpu: (user + system) / 1000 })}\n`,
  );
};
line({ step: 'node', at: performance.timeOrigin + performance.now() });
channel(STARTUP_CHANNEL).subscribe(line);
