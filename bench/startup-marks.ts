/**
 * Preloaded into a tswtpm server by bench/startup-breakdown.ts (`node --import` this
 * file): writes every start-up step the server publishes on `tswtpm:startup`
 * (src/cli/server/startup-trace.ts) to stderr as one line `tswtpm-startup <json>`,
 * plus a first line for the moment this preload runs (Node itself has started).
 */
import { channel } from 'node:diagnostics_channel';
import { writeSync } from 'node:fs';
import { STARTUP_CHANNEL } from '../src/cli/server/startup-trace.js';

const line = (m: unknown) => writeSync(2, `tswtpm-startup ${JSON.stringify(m)}\n`);
line({ step: 'node', at: performance.timeOrigin + performance.now() });
channel(STARTUP_CHANNEL).subscribe(line);
