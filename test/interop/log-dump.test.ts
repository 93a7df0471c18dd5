import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { run, startTcp, tempDir } from '../helpers/procs.js';

// `--log file=F,level=20` dumps control and data traffic exactly as swtpm does, so tools
// that parse swtpm's log (e.g. the decoder in spec/clients.md) work on ours.

const HAVE_SWTPM = (await run('swtpm', ['--version'])).code === 0;
const work = tempDir();
after(() => work.remove());

async function dump(which: 'swtpm' | 'tswtpm'): Promise<string> {
  const dir = join(work.path, which);
  await run('mkdir', ['-p', dir]);
  const log = join(dir, 'log');
  const s = await startTcp(which, [
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--log',
    `file=${log},level=20`,
  ]);
  const ctl = ['--tcp', `127.0.0.1:${s.ctrlPort}`];
  await run('swtpm_ioctl', [...ctl, '-g']);
  await run('swtpm_ioctl', [...ctl, '-l', '3']);
  await run('swtpm_ioctl', [...ctl, '-e']); // not running: 0x0a
  await run('swtpm_ioctl', [...ctl, '-s']);
  await s.stop();
  return readFileSync(log, 'utf8');
}

test('control traffic dump matches swtpm line for line', { skip: !HAVE_SWTPM }, async () => {
  const theirs = await dump('swtpm');
  const ours = await dump('tswtpm');
  assert.match(ours, /^ Ctrl Cmd: length 4\n 00 00 00 0F \n Ctrl Rsp: length 8\n/);
  assert.equal(ours, theirs);
});
