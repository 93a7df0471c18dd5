// Which of Node's built-in modules a `tswtpm socket` start loads before it serves.
// Each one costs a start its load and its first calls (docs/performance.md,
// "Start-up"); these must stay out of the start: node:module, which brings Node's ES
// module loader (the CommonJS bundle runs without it), and the modules that tswtpm
// requires on first use only (node:os, node:child_process, node:crypto, node:net).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TSWTPM_BIN, startTpm } from '../../src/client/start.js';
import { tempDir } from '../helpers/procs.js';

/** Subscribes to the start-up steps and writes process.moduleLoadList at `ready`. */
const PRELOAD = `
const { writeFileSync } = require('node:fs');
require('node:diagnostics_channel').channel('tswtpm:startup').subscribe((m) => {
  if (m.step === 'ready') writeFileSync(process.env.MODULES_OUT, process.moduleLoadList.join('\\n'));
});
`;

describe('built-in modules loaded by a server start', () => {
  const dir = tempDir('tswtpm-startup-modules-');
  let loaded: string[] = [];
  before(async () => {
    const preload = join(dir.path, 'preload.cjs');
    const out = join(dir.path, 'modules.txt');
    writeFileSync(preload, PRELOAD);
    const t = await startTpm({
      command: [process.execPath, '-r', preload, TSWTPM_BIN],
      env: { ...process.env, MODULES_OUT: out },
    });
    await t.close();
    loaded = readFileSync(out, 'utf8').split('\n');
  });
  after(() => dir.remove());

  it('the start ran from the bundle (a module tree needs the ES module loader)', () => {
    assert.ok(loaded.includes('NativeModule vm'), 'vm.Script compiles the bundle');
  });

  it('not diagnostics_channel, to the end of the process, when nothing preloaded subscribes', async () => {
    // (the preload above subscribes, which loads it: this start has a listener of exit only)
    const preload = join(dir.path, 'at-exit.cjs');
    const out = join(dir.path, 'at-exit.txt');
    writeFileSync(
      preload,
      "process.on('exit', () => require('node:fs').writeFileSync(process.env.MODULES_OUT, process.moduleLoadList.join('\\n')));",
    );
    const t = await startTpm({
      command: [process.execPath, '-r', preload, TSWTPM_BIN],
      env: { ...process.env, MODULES_OUT: out },
    });
    const rsp = await t.tpm.transmit(Buffer.from('80010000000c0000017b0008', 'hex'));
    assert.equal(rsp.readUInt32BE(6), 0, 'GetRandom answered');
    await t.close();
    const atExit = readFileSync(out, 'utf8').split('\n');
    assert.ok(atExit.includes('NativeModule vm'), 'ran from the bundle');
    assert.ok(!atExit.includes('NativeModule diagnostics_channel'));
  });

  for (const m of [
    'module',
    'internal/modules/esm/loader',
    'os',
    'child_process',
    'crypto',
    'net',
  ]) {
    it(`not ${m}`, () => {
      assert.ok(!loaded.includes(`NativeModule ${m}`), `NativeModule ${m} was loaded`);
    });
  }
});
