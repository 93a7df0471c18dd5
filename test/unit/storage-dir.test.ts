import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
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
    // O_NOFOLLOW on the temp file: a planted symlink is not followed
    symlinkSync(join(d, 'target'), join(d, 'TMP2-00.savestate'));
    storageError(() => b.write('2.0', 'savestate', bytes('x')), 'WRITE_FAILED', 'ELOOP');
    assert.equal(existsSync(join(d, 'target')), false);
    if (process.getuid?.() !== 0) {
      writeFileSync(join(d, 'tpm-00.permall'), 'x');
      chmodSync(join(d, 'tpm-00.permall'), 0);
      storageError(() => b.read('1.2', 'permall'), 'READ_FAILED', 'EACCES');
    }
  });

  it('backup keeps the previous permall and can restore it', () => {
    const d = freshDir();
    const b = new DirBackend(d, { backup: true, fsync: true });
    assert.equal(b.restoreBackup('2.0'), false);
    b.write('2.0', 'permall', bytes('v1'));
    assert.equal(existsSync(join(d, 'tpm2-00.permall.bak')), false);
    b.write('2.0', 'permall', bytes('v2'));
    assert.equal(readFileSync(join(d, 'tpm2-00.permall.bak'), 'utf8'), 'v1');
    b.write('2.0', 'volatilestate', bytes('vol'));
    b.write('2.0', 'volatilestate', bytes('vol2'));
    assert.equal(existsSync(join(d, 'tpm2-00.volatilestate.bak')), false);
    b.delete('2.0', 'permall');
    assert.equal(b.restoreBackup('2.0'), true);
    assert.deepEqual(b.read('2.0', 'permall'), bytes('v1'));
    assert.equal(existsSync(join(d, 'tpm2-00.permall.bak')), true);
    assert.equal(existsSync(join(d, 'tpm2-00.permall.tmp')), false);
  });

  it('holds .lock open while locked (fcntl locks are per process, so re-locking succeeds)', () => {
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
