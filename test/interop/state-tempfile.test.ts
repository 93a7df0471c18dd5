import assert from 'node:assert/strict';
import { existsSync, linkSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlClient } from '../../src/client/index.js';
import { run, startTcp, tempDir } from '../helpers/procs.js';

// Issue 10: a file planted at a state write's temp name (TMP2-00.permall) must never be
// written through. swtpm 0.7.1 opens it O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW: a hard
// link to another file gets the TPM state written into that file. tswtpm removes a
// leftover temp file and creates its own with O_EXCL (docs/compat.md).

const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;
const work = tempDir();
after(() => work.remove());

/** Plants links at the temp name, runs a server that manufactures a TPM, returns the victim. */
async function plantAndRun(which: 'swtpm' | 'tswtpm', kind: 'hard' | 'sym') {
  const dir = join(work.path, `${which}-${kind}`);
  mkdirSync(dir);
  const victim = join(work.path, `${which}-${kind}-victim`);
  writeFileSync(victim, 'precious');
  const tmp = join(dir, 'TMP2-00.permall');
  if (kind === 'hard') linkSync(victim, tmp);
  else symlinkSync(victim, tmp);
  const s = await startTcp(which, [
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--flags',
    'not-need-init,startup-clear',
  ]);
  // A control reply comes once the TPM has started (swtpm listens before that).
  await new ControlClient({ port: s.ctrlPort }).getCapability();
  await s.stop();
  return {
    victim: readFileSync(victim, 'utf8'),
    stored: existsSync(join(dir, 'tpm2-00.permall')),
  };
}

test('tswtpm: a hard link or symlink at the temp name is replaced, never written', async () => {
  for (const kind of ['hard', 'sym'] as const) {
    const r = await plantAndRun('tswtpm', kind);
    assert.equal(r.victim, 'precious', `${kind} link: the other file is untouched`);
    assert.equal(r.stored, true, `${kind} link: the permall was written`);
  }
});

test(
  'swtpm 0.7.1 (the reference) writes the state through a planted hard link',
  {
    skip: !HAVE_SWTPM && 'no swtpm',
  },
  async () => {
    const r = await plantAndRun('swtpm', 'hard');
    assert.notEqual(r.victim, 'precious', 'swtpm truncated and wrote the linked file');
  },
);
