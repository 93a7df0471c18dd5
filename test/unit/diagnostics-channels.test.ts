// src/diagnostics-channels.ts: tswtpm's diagnostics channels load node:diagnostics_channel only when
// someone can listen. Each case runs in a fresh process (the choice is process-wide).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const DIAG = new URL('../../src/diagnostics-channels.js', import.meta.url).href;

/** Runs `body` as an ES module after importing diagnostics-channels.js; returns its stdout lines. */
function run(body: string, preload?: string): string[] {
  const code = `import { deferChannels, diagChannel } from '${DIAG}';\n${body}`;
  const args = [...(preload ? ['-r', preload] : []), '--input-type=module', '-e', code];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n');
}

const LOADED = `const loaded = () => process.moduleLoadList.includes('NativeModule diagnostics_channel');`;

describe('diagnostics channels', () => {
  it('a server without listeners: deferred, nothing loaded, until tswtpm subscribes', () => {
    const out = run(`${LOADED}
      const ch = diagChannel('tswtpm:test');
      console.log(deferChannels(), ch.hasSubscribers, loaded());
      const got = [];
      ch.subscribe((m) => got.push(m));
      ch.publish('x');
      console.log(ch.hasSubscribers, loaded(), got.join());`);
    // (the ES module loader of -e does not load node:diagnostics_channel itself)
    assert.deepEqual(out, ['true false false', 'true true x']);
  });

  it('a preloaded subscriber: not deferred, and it receives what is published', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tswtpm-diag-'));
    try {
      const preload = join(dir, 'listen.cjs');
      writeFileSync(
        preload,
        "require('node:diagnostics_channel').subscribe('tswtpm:test', (m) => console.log('pre', m));",
      );
      const out = run(
        `const ch = diagChannel('tswtpm:test');
        console.log(deferChannels(), ch.hasSubscribers);
        ch.publish('y');`,
        preload,
      );
      assert.deepEqual(out, ['false true', 'pre y']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the library (no deferChannels): a subscriber by name after the channel was made', () => {
    const out = run(`
      const ch = diagChannel('tswtpm:test');
      console.log(ch.hasSubscribers);
      const dc = await import('node:diagnostics_channel');
      dc.subscribe('tswtpm:test', (m) => console.log('got', m));
      console.log(ch.hasSubscribers);
      ch.publish('z');`);
    assert.deepEqual(out, ['false', 'true', 'got z']);
  });
});
