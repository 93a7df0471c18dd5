import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlClient, TpmClient } from '../../src/client/index.js';
import { extend12, getRandom12, pcrRead12, startup12 } from '../../src/protocol/tpm/commands.js';
import { run, startTcp, tempDir } from '../helpers/procs.js';

// `--log level=N` with N >= 5 turns on libtpms' own trace at level N-4, on the log fd,
// after `prefix=` plus four spaces, as swtpm 0.7.1 does (issue 14 item 4). Only libtpms'
// TPM 1.2 code writes such lines, so the session is TPM 1.2.

const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;
const work = tempDir();
after(() => work.remove());

type Impl = 'swtpm' | 'tswtpm';

/** INIT, TPM_Startup, GetRandom, Extend, PCRRead, SHUTDOWN; returns the log file's text. */
async function session(impl: Impl, logOpts: string, name: string, before = ''): Promise<string> {
  const dir = join(work.path, `${impl}-${name}`);
  await run('mkdir', ['-p', dir]);
  const log = join(dir, 'log');
  if (before !== '') writeFileSync(log, before);
  const s = await startTcp(impl, ['--tpmstate', `dir=${dir}`, '--log', `file=${log},${logOpts}`]);
  try {
    const ctl = new ControlClient({ port: s.ctrlPort });
    await ctl.init();
    const tpm = new TpmClient({ port: s.port });
    for (const cmd of [
      startup12(),
      getRandom12(16),
      extend12(10, Buffer.alloc(20, 1)),
      pcrRead12(10),
    ]) {
      const rsp = await tpm.transmit(cmd);
      assert.equal(rsp.readUInt32BE(6), 0, `${impl}: TPM result of ${cmd.toString('hex')}`);
    }
    await tpm.close();
    await ctl.shutdown();
  } finally {
    await s.stop();
  }
  return readFileSync(log, 'utf8');
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

/** Leading spaces after the prefix → number of lines. */
function indents(text: string, prefix = ''): Map<number, number> {
  const m = new Map<number, number>();
  for (const l of lines(text)) {
    assert.ok(l.startsWith(prefix), `line without the prefix: ${JSON.stringify(l)}`);
    const n = /^ */.exec(l.slice(prefix.length))?.[0].length ?? 0;
    m.set(n, (m.get(n) ?? 0) + 1);
  }
  return m;
}

const keys = (m: Map<number, number>) => [...m.keys()].sort((a, b) => a - b);

/**
 * The distinct lines with numbers, hex bytes and times masked (random, clock). Left out:
 * libtpms' `TPM_bn2binMalloc: padBytes N bytes M`, written only when a big number (a
 * random nonce among them) has a leading zero byte, so in either process by chance.
 */
function shapes(text: string): Set<string> {
  return new Set(
    lines(text)
      .filter((l) => !/TPM_bn2binMalloc: padBytes/.test(l))
      .map((l) => l.replace(/\b[0-9A-Fa-f]{2}\b|\d+/g, '#')),
  );
}

test('level=20: the same libtpms TPM 1.2 trace as swtpm 0.7.1', { skip: !HAVE_SWTPM }, async () => {
  const [theirs, ours] = await Promise.all([
    session('swtpm', 'level=20', 'l20'),
    session('tswtpm', 'level=20', 'l20'),
  ]);
  // swtpm: 1 space (its dumps), 4 (libtpms' unindented lines), 5, 6, 7.
  assert.deepEqual(keys(indents(ours)), keys(indents(theirs)));
  assert.deepEqual(keys(indents(ours)), [1, 4, 5, 6, 7]);
  for (const l of [
    '    TPM_MainInit: Initialize the TPM crypto support',
    '     TPM_Process_GetCommandParams:',
    '    TPM_Process_GetRandom: Ordinal Entry',
    '    TPM_Process_Extend: Ordinal Entry',
    '    TPM_Process_PcrRead: Ordinal Entry',
  ]) {
    assert.ok(lines(theirs).includes(l), `swtpm: ${l}`);
    assert.ok(lines(ours).includes(l), `tswtpm: ${l}`);
  }
  // Line for line the same kinds of line (swtpm adds two TPM_Global_Delete: lines, from
  // a TPMLIB_Terminate before INIT and at exit; the same line also occurs in ours).
  const a = shapes(theirs);
  const b = shapes(ours);
  assert.deepEqual(
    [...a].filter((l) => !b.has(l)),
    [],
  );
  assert.deepEqual(
    [...b].filter((l) => !a.has(l)),
    [],
  );
  // Our traffic dump precedes the libtpms lines of the command it shows.
  const i = lines(ours).findIndex((l) => l.startsWith(' SWTPM_IO_Read: length 14'));
  assert.equal(lines(ours)[i + 2], '     TPM_Process_GetCommandParams:');
});

test(
  'level=5 and 6 cut off libtpms lines as swtpm does; prefix= and truncate',
  {
    skip: !HAVE_SWTPM,
  },
  async () => {
    const old = 'an old line\n';
    const [t5, o5, t6, o6, ta, oa] = await Promise.all([
      session('swtpm', 'level=5,truncate', 'l5', old),
      session('tswtpm', 'level=5,truncate', 'l5', old),
      session('swtpm', 'level=6,prefix=[x] ', 'l6'),
      session('tswtpm', 'level=6,prefix=[x] ', 'l6'),
      session('swtpm', 'level=1', 'l1', old),
      session('tswtpm', 'level=1', 'l1', old),
    ]);
    assert.deepEqual(indents(o5), indents(t5));
    assert.deepEqual(keys(indents(o5)), [1, 4]);
    assert.ok(!o5.includes(old) && !t5.includes(old), 'truncate empties the file');
    assert.ok(ta.startsWith(old) && oa.startsWith(old), 'without truncate the log is appended to');
    assert.equal(oa, ta);
    assert.deepEqual(keys(indents(o6, '[x] ')), keys(indents(t6, '[x] ')));
    assert.deepEqual(keys(indents(o6, '[x] ')), [1, 4, 5]);
    assert.ok(lines(o6).includes('[x]     TPM_MainInit: Initialize the TPM crypto support'));
    assert.ok(lines(o6).includes('[x]  Ctrl Cmd: length 8'));
  },
);
