import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeStateFile } from '../../src/protocol/state/index.js';
import { LinearFileBackend, sectionSize } from '../../src/storage/file.js';
import { FIXTURES, fixture, toHex } from '../fixtures/state/harness.js';

const root = mkdtempSync(join(tmpdir(), 'tswtpm-lin-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `f${n++}.img`);

// linear.img: Debian swtpm 0.7.1 with backend-uri=file://, permall (1315 bytes) and
// volatilestate (8986 bytes)
const debian = fixture('linear.img');

describe('LinearFileBackend', () => {
  it('reads the file Debian swtpm wrote', () => {
    const p = fresh();
    copyFileSync(join(FIXTURES, 'linear.img'), p);
    const b = new LinearFileBackend(p);
    const permall = b.read('2.0', 'permall');
    assert.ok(permall);
    assert.equal(permall.length, 1315);
    assert.equal(toHex(decodeStateFile(permall).plain.subarray(2, 6)), 'ab364723');
    assert.equal(b.read('2.0', 'volatilestate')?.length, 8986);
    assert.equal(b.read('2.0', 'savestate'), undefined);
    b.close();
    assert.deepEqual(new Uint8Array(readFileSync(p)), debian);
  });

  it('lays out a new file exactly like Debian swtpm', () => {
    const p = fresh();
    const b = new LinearFileBackend(p);
    b.write('2.0', 'permall', debian.subarray(192, 192 + 1315));
    b.write('2.0', 'volatilestate', debian.subarray(2240, 2240 + 8986));
    b.close();
    const ours = new Uint8Array(readFileSync(p));
    assert.equal(ours.length, debian.length);
    assert.equal(toHex(ours.subarray(0, 192)), toHex(debian.subarray(0, 192)));
    assert.equal(statSync(p).mode & 0o777, 0o640 & ~process.umask());
  });

  it('header is little-endian: magic "nilmptws", version 1, hdrsize 192, entries', () => {
    assert.equal(toHex(debian.subarray(0, 12)), '6e696c6d7074777301' + '00c000');
    // entry 0: offset 192, 1315 bytes, section 2048; entry 1: 2240, 8986, 16384
    assert.equal(
      toHex(debian.subarray(12, 36)),
      'c000000023050000000800' + '00c0080000' + '1a23000000400000',
    );
    assert.equal(sectionSize(1315), 2048);
    assert.equal(sectionSize(8986), 16384);
    assert.equal(sectionSize(1), 1);
  });

  it('grows sections, compacts on delete and shrinks the file', () => {
    const p = fresh();
    const b = new LinearFileBackend(p);
    const a = new Uint8Array(100).fill(0xaa);
    const v = new Uint8Array(300).fill(0xbb);
    const s = new Uint8Array(50).fill(0xcc);
    b.write('2.0', 'permall', a);
    b.write('2.0', 'volatilestate', v);
    b.write('2.0', 'savestate', s);
    assert.equal(statSync(p).size, 192 + 128 + 512 + 64);
    // permall grows beyond its section: moved to the end, the others move forward
    const big = new Uint8Array(200).fill(0xab);
    b.write('2.0', 'permall', big);
    assert.equal(statSync(p).size, 192 + 512 + 64 + 256);
    assert.deepEqual(b.read('2.0', 'volatilestate'), v);
    assert.deepEqual(b.read('2.0', 'savestate'), s);
    assert.deepEqual(b.read('2.0', 'permall'), big);
    // smaller data stays in its section
    b.write('2.0', 'permall', a);
    assert.equal(statSync(p).size, 192 + 512 + 64 + 256);
    assert.equal(b.delete('2.0', 'volatilestate'), true);
    assert.equal(b.delete('2.0', 'volatilestate'), false);
    assert.equal(statSync(p).size, 192 + 64 + 256);
    assert.deepEqual(b.read('2.0', 'savestate'), s);
    assert.deepEqual(b.read('2.0', 'permall'), a);
    b.close();
    const again = new LinearFileBackend(p);
    assert.deepEqual(again.read('2.0', 'permall'), a);
    assert.equal(again.read('2.0', 'volatilestate'), undefined);
    again.close();
  });

  it('formats a file without the magic', () => {
    const p = fresh();
    writeFileSync(p, new Uint8Array(300).fill(0x5a));
    const b = new LinearFileBackend(p);
    assert.equal(b.read('2.0', 'permall'), undefined);
    b.write('2.0', 'permall', new Uint8Array(10));
    b.close();
    const f = readFileSync(p);
    assert.equal(f.subarray(0, 8).toString('latin1'), 'nilmptws');
    assert.equal(f.readUInt32LE(12), 192); // first section right after the header
    assert.equal(f.length, 300); // regular files only grow when a section needs room
  });

  it('rejects entries that point outside the file', () => {
    const p = fresh();
    const bad = Uint8Array.from(debian.subarray(0, 2240)); // volatilestate cut off
    writeFileSync(p, bad);
    const b = new LinearFileBackend(p);
    assert.equal(b.read('2.0', 'permall')?.length, 1315);
    assert.throws(() => b.read('2.0', 'volatilestate'), { code: 'BAD_LINEAR_FILE' });
    b.close();
  });

  it('locks the file itself only when asked', () => {
    const p = fresh();
    const plain = new LinearFileBackend(p);
    assert.equal(plain.lock(0), true);
    assert.equal(plain.locked, true);
    plain.close();
    const locking = new LinearFileBackend(p, { lock: true });
    assert.equal(locking.locked, false);
    assert.equal(locking.lock(0), true);
    assert.equal(locking.locked, true);
    locking.unlock();
    assert.equal(locking.locked, false);
    locking.close();
  });
});
