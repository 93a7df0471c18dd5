import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TSWTPM_BIN, freePortPair, run, startTcp, tempDir } from '../helpers/procs.js';

// `--tpmstate dir=D,backup` (swtpm master): each permall write keeps the previous one as
// `.bak`; when libtpms rejects the permall at start, the backup is used, and the rejected
// file is kept as `.bad` (state is never thrown away).

const work = tempDir();
after(() => work.remove());

test('a rejected permall falls back to its backup and is kept as .bad', async () => {
  const state = ['--tpm2', '--tpmstate', `dir=${work.path},backup`];
  const a = await startTcp('tswtpm', [...state, '--flags', 'not-need-init,startup-clear']);
  assert.equal(await a.stop(), 0); // the automatic TPM2_Shutdown writes permall again
  const permall = join(work.path, 'tpm2-00.permall');
  assert.ok(existsSync(`${permall}.bak`), 'a backup exists after the second write');

  const bytes = readFileSync(permall);
  const bad = Buffer.from(bytes);
  for (let i = 200; i < 260; i++) bad[i] = (bad[i] ?? 0) ^ 0xa5;
  writeFileSync(permall, bad);

  // Without `backup` the damaged state is an error and stays as it is.
  const p = await freePortPair();
  const plain = await run(process.execPath, [
    TSWTPM_BIN,
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${work.path}`,
    '--flags',
    'not-need-init',
    '--server',
    `type=tcp,port=${p}`,
  ]);
  assert.equal(plain.code, 1);
  assert.deepEqual(readFileSync(permall), bad);

  const b = await startTcp('tswtpm', [...state, '--flags', 'not-need-init,startup-clear']);
  assert.equal(await b.stop(), 0);
  assert.match(b.stderr(), /retrying with its backup/);
  assert.deepEqual(readFileSync(`${permall}.bad`), bad, 'the rejected permall is kept');
});
