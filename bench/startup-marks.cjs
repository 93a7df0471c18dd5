// Preloaded into a tswtpm server by bench/startup-breakdown.ts (`node -r` this file):
// writes every start-up step the server publishes on `tswtpm:startup`
// (src/cli/server/startup-trace.ts, STARTUP_CHANNEL) to stderr as one line
// `tswtpm-startup <json>`, plus a first line for the moment this preload runs (Node
// itself has started). Each line adds `cpu`: the process' CPU time so far (user +
// system, all threads, ms), which other processes on a busy machine disturb far less
// than the wall-clock time.
// CommonJS on purpose: an ES module preload (`--import`) makes Node set up its ES module
// loader first, about 12 ms that an untraced start does not pay.
'use strict';
const { channel } = require('node:diagnostics_channel');
const { writeSync } = require('node:fs');

const line = (m) => {
  const { user, system } = process.cpuUsage();
  const at = m.at ?? performance.timeOrigin + performance.now();
  writeSync(2, `tswtpm-startup ${JSON.stringify({ ...m, at, cpu: (user + system) / 1000 })}\n`);
};
line({ step: 'node' });
channel('tswtpm:startup').subscribe(line);
