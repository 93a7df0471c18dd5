import assert from 'node:assert/strict';
import {
  chmodSync,
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DirBackend } from '../../src/storage/dir.js';
import { StorageError } from '../../src/storage/errors.js';
import { stateFileName, tempFileName } from '../../src/storage/names.js';

const root = mkdtempSync(join(tmpdir(), 'tswtpm-dir-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function freshDir(): string {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  return d;
}
/** Every file in `d` with its bytes, for before/after comparisons. */
function snapshot(d: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(d).sort()) out[f] = readFileSync(join(d, f)).toString('hex');
  return out;
}
const bytes = (s: string) => new TextEncoder().encode(s);

function storageError(fn: () => unknown, code: string, mention: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StorageError, String(e));
    assert.equal(e.code, code);
    assert.ok(e.message.includes(mention), e.message);
    return true;
  });
}

describe('DirBackend', () => {
  it('uses swtpm file names', () => {
    assert.equal(stateFileName('2.0', 'permall'), 'tpm2-00.permall');
    assert.equal(stateFileName('1.2', 'volatilestate'), 'tpm-00.volatilestate');
    assert.equal(stateFileName('1.2', 'savestate'), 'tpm-00.savestate');
    assert.equal(tempFileName('2.0', 'permall'), 'TMP2-00.permall');
    assert.equal(tempFileName('1.2', 'savestate'), 'TMP-00.savestate');
  });

  it('writes, reads, replaces and deletes without leaving temp files', () => {
    const d = freshDir();
    const b = new DirBackend(d);
    assert.equal(b.uri, `dir://${d}`);
    assert.equal(b.read('2.0', 'permall'), undefined);
    b.write('2.0', 'permall', bytes('one'));
    b.write('2.0', 'permall', bytes('two'));
    b.write('1.2', 'savestate', bytes('s'));
    assert.deepEqual(readdirSync(d).sort(), ['tpm-00.savestate', 'tpm2-00.permall']);
    assert.equal(readFileSync(join(d, 'tpm2-00.permall'), 'utf8'), 'two');
    assert.deepEqual(b.read('2.0', 'permall'), bytes('two'));
    assert.equal(b.delete('2.0', 'permall'), true);
    assert.equal(b.delete('2.0', 'permall'), false);
    assert.equal(b.read('2.0', 'permall'), undefined);
  });

  it('creates files 0640 by default (umask applies) and exactly mode= otherwise', () => {
    const d = freshDir();
    const old = process.umask(0o077);
    try {
      new DirBackend(d).write('2.0', 'permall', bytes('x'));
      assert.equal(statSync(join(d, 'tpm2-00.permall')).mode & 0o777, 0o600);
      new DirBackend(d, { mode: 0o664 }).write('2.0', 'volatilestate', bytes('x'));
      assert.equal(statSync(join(d, 'tpm2-00.volatilestate')).mode & 0o777, 0o664);
    } finally {
      process.umask(old);
    }
    new DirBackend(d).write('2.0', 'savestate', bytes('x'));
    assert.equal(statSync(join(d, 'tpm2-00.savestate')).mode & 0o777, 0o640 & ~process.umask());
  });

  it('never creates the directory', () => {
    const d = join(root, 'missing');
    const b = new DirBackend(d);
    assert.equal(b.read('2.0', 'permall'), undefined);
    storageError(() => b.write('2.0', 'permall', bytes('x')), 'WRITE_FAILED', 'TMP2-00.permall');
    assert.equal(existsSync(d), false);
    storageError(() => b.lock(0), 'LOCK_FAILED', '.lock');
  });

  it('reports unreadable state files with the file name', () => {
    const d = freshDir();
    const b = new DirBackend(d);
    mkdirSync(join(d, 'tpm2-00.permall'));
    storageError(() => b.read('2.0', 'permall'), 'READ_FAILED', 'EISDIR');
    symlinkSync(join(d, 'elsewhere'), join(d, 'tpm2-00.volatilestate'));
    storageError(() => b.read('2.0', 'volatilestate'), 'READ_FAILED', 'tpm2-00.volatilestate');
    if (process.getuid?.() !== 0) {
      writeFileSync(join(d, 'tpm-00.permall'), 'x');
      chmodSync(join(d, 'tpm-00.permall'), 0);
      storageError(() => b.read('1.2', 'permall'), 'READ_FAILED', 'EACCES');
    }
  });

  it('backup keeps the previous permall; a start from it changes files only when it succeeds', () => {
    const d = freshDir();
    const b = new DirBackend(d, { backup: true, fsync: true });
    assert.equal(b.beginFromBackup('2.0'), false);
    b.write('2.0', 'permall', bytes('v1'));
    assert.equal(existsSync(join(d, 'tpm2-00.permall.bak')), false);
    b.write('2.0', 'permall', bytes('v2'));
    assert.equal(readFileSync(join(d, 'tpm2-00.permall.bak'), 'utf8'), 'v1');
    b.write('2.0', 'volatilestate', bytes('vol'));
    b.write('2.0', 'volatilestate', bytes('vol2'));
    assert.equal(existsSync(join(d, 'tpm2-00.volatilestate.bak')), false);
    const before = snapshot(d);
    assert.equal(b.beginFromBackup('2.0'), true);
    assert.deepEqual(b.read('2.0', 'permall'), bytes('v1'));
    b.endFromBackup(false);
    assert.deepEqual(snapshot(d), before, 'a failed start from the backup changes nothing');
    assert.deepEqual(b.read('2.0', 'permall'), bytes('v2'));
    assert.equal(b.beginFromBackup('2.0'), true);
    b.endFromBackup(true);
    assert.deepEqual(b.read('2.0', 'permall'), bytes('v1'));
    assert.equal(readFileSync(join(d, 'tpm2-00.permall.bad'), 'utf8'), 'v2');
    assert.equal(readFileSync(join(d, 'tpm2-00.permall.bak'), 'utf8'), 'v1');
    assert.equal(existsSync(join(d, 'tpm2-00.permall.tmp')), false);
    b.close();
  });

  it('a permall write while starting from the backup adopts the backup first', () => {
    const d = freshDir();
    const b = new DirBackend(d, { backup: true });
    b.write('2.0', 'permall', bytes('v1'));
    b.write('2.0', 'permall', bytes('v2'));
    assert.equal(b.beginFromBackup('2.0'), true);
    b.write('2.0', 'permall', bytes('v3'));
    b.endFromBackup(true);
    assert.equal(readFileSync(join(d, 'tpm2-00.permall'), 'utf8'), 'v3');
    assert.equal(readFileSync(join(d, 'tpm2-00.permall.bak'), 'utf8'), 'v1');
    assert.equal(readFileSync(join(d, 'tpm2-00.permall.bad'), 'utf8'), 'v2');
    b.close();
  });

  it('never writes through a file or symlink planted at a temp name (issue 10)', () => {
    const d = freshDir();
    const b = new DirBackend(d, { backup: true });
    b.write('2.0', 'permall', bytes('v1'));
    // A symlink: before, O_NOFOLLOW made the write fail (ELOOP); now it is replaced.
    symlinkSync(join(d, 'target'), join(d, 'TMP2-00.savestate'));
    b.write('2.0', 'savestate', bytes('s'));
    assert.equal(existsSync(join(d, 'target')), false);
    assert.equal(readFileSync(join(d, 'tpm2-00.savestate'), 'utf8'), 's');
    // A hard link to someone else's file: O_TRUNC used to write the state into it.
    const victim = join(root, `victim${n}`);
    writeFileSync(victim, 'precious');
    for (const tmp of ['TMP2-00.permall', 'tpm2-00.permall.bak.tmp'])
      linkSync(victim, join(d, tmp));
    b.write('2.0', 'permall', bytes('v2'));
    assert.equal(readFileSync(victim, 'utf8'), 'precious');
    assert.equal(readFileSync(join(d, 'tpm2-00.permall'), 'utf8'), 'v2');
    assert.equal(readFileSync(join(d, 'tpm2-00.permall.bak'), 'utf8'), 'v1');
    assert.deepEqual(readdirSync(d).sort(), [
      'tpm2-00.permall',
      'tpm2-00.permall.bak',
      'tpm2-00.savestate',
    ]);
    b.close();
  });

  it('the lock belongs to its own fd: closing another fd of .lock keeps it (OFD lock)', () => {
    const d = freshDir();
    const a = new DirBackend(d);
    assert.equal(a.lock(0), true);
    // A classic POSIX lock would be dropped by this close (locks belong to the process).
    closeSync(openSync(join(d, '.lock'), 'r'));
    const b = new DirBackend(d);
    assert.equal(b.lock(0), false, 'a second holder in the same process is refused');
    a.unlock();
    assert.equal(b.lock(0), true);
    b.close();
  });

  it('holds .lock open while locked', () => {
    const d = freshDir();
    const b = new DirBackend(d);
    assert.equal(b.locked, false);
    assert.equal(b.lock(0), true);
    assert.equal(b.locked, true);
    assert.equal(statSync(join(d, '.lock')).size, 0);
    const fds = readdirSync('/proc/self/fd').map((f) => {
      try {
        return readlinkSync(`/proc/self/fd/${f}`);
      } catch {
        return '';
      }
    });
    assert.ok(fds.includes(join(d, '.lock')));
    b.unlock();
    assert.equal(b.locked, false);
    const unlocked = new DirBackend(d, { lock: false });
    assert.equal(unlocked.lock(0), true);
    assert.equal(unlocked.locked, true);
    b.close();
  });
});
