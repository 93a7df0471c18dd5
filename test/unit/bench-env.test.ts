// bench/env.ts: the variables that slow every Node start are removed from the
// environment the benchmarks hand to their children, unless TSWTPM_BENCH_KEEP_ENV=1.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { REMOVED_BY_PARENT, benchEnvironment, environmentNote } from '../../bench/env.js';

describe('bench environment', () => {
  it('removes NODE_EXTRA_CA_CERTS and leaves every other variable', () => {
    const env: NodeJS.ProcessEnv = { NODE_EXTRA_CA_CERTS: '/x.pem', PATH: '/bin', HOME: '/h' };
    assert.deepEqual(benchEnvironment(env), ['NODE_EXTRA_CA_CERTS']);
    assert.deepEqual(env, { PATH: '/bin', HOME: '/h' });
    assert.match(environmentNote(['NODE_EXTRA_CA_CERTS']), /NODE_EXTRA_CA_CERTS removed/);
  });

  it('nothing to remove: an empty list, and the note says the environment is inherited', () => {
    const env: NodeJS.ProcessEnv = { PATH: '/bin' };
    assert.deepEqual(benchEnvironment(env), []);
    assert.deepEqual(env, { PATH: '/bin' });
    assert.equal(environmentNote([]), 'environment: inherited unchanged');
  });

  it('TSWTPM_BENCH_KEEP_ENV=1 keeps the environment as it is', () => {
    const env: NodeJS.ProcessEnv = { NODE_EXTRA_CA_CERTS: '/x.pem', TSWTPM_BENCH_KEEP_ENV: '1' };
    assert.deepEqual(benchEnvironment(env), []);
    assert.equal(env.NODE_EXTRA_CA_CERTS, '/x.pem');
  });

  it("a re-run of the bench (--pin) reports its parent's removals", () => {
    const env: NodeJS.ProcessEnv = { [REMOVED_BY_PARENT]: 'NODE_EXTRA_CA_CERTS' };
    assert.deepEqual(benchEnvironment(env), ['NODE_EXTRA_CA_CERTS']);
  });

  it('a child started after the call does not see the variable', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent.pem' };
    benchEnvironment(env);
    const r = spawnSync(
      process.execPath,
      ['-e', 'process.stdout.write(String(process.env.NODE_EXTRA_CA_CERTS))'],
      { env, encoding: 'utf8' },
    );
    assert.equal(r.stdout, 'undefined');
  });
});
