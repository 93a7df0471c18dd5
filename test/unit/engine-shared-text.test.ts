// engine/shared-text.ts: every memfd copy of libtpms runs the library file's own code
// pages, keeps its own data, and its memfd gives back what nothing maps any more.
// (That the copies stay separate TPMs is integration/instances.test.ts.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  type Mapping,
  parseMaps,
  plannedMappings,
  readOnlyPrefix,
  textMappings,
  textSegments,
} from '../../src/engine/shared-text.js';

const LIBTPMS = '/usr/lib/x86_64-linux-gnu/libtpms.so.0';

/** Debian 12's libtpms 0.9.2 layout (readelf -l): R, R E, R, RW (+ RELRO at 0xded50). */
const SEGMENTS = [
  { vaddr: 0x0, offset: 0x0, filesz: 0x9920, exec: false, limit: 0xa000 },
  { vaddr: 0xa000, offset: 0xa000, filesz: 0x86f6d, exec: true, limit: 0x91000 },
  { vaddr: 0x91000, offset: 0x91000, filesz: 0x4cd2c, exec: false, limit: 0xde000 },
];

/** A copy as glibc maps it at `base` (inode 77 on 00:01), after RELRO protection. */
function copyMaps(base: bigint, dev = '00:01', inode = 77): Mapping[] {
  const m = (lo: number, hi: number, perms: string, offset: number): Mapping => ({
    start: base + BigInt(lo),
    end: base + BigInt(hi),
    perms,
    offset,
    dev,
    inode,
  });
  return [
    m(0x0, 0xa000, 'r--p', 0x0),
    m(0xa000, 0x91000, 'r-xp', 0xa000),
    m(0x91000, 0xde000, 'r--p', 0x91000),
    m(0xde000, 0xe2000, 'r--p', 0xdd000), // RELRO: relocated, must stay
    m(0xe2000, 0xe5000, 'rw-p', 0xe1000),
  ];
}

describe('shared libtpms text', () => {
  it('finds the non-writable PT_LOAD segments of the real library', () => {
    const elf = new Uint8Array(readFileSync(LIBTPMS));
    const segs = textSegments(elf);
    assert.ok(segs.length >= 1, 'at least the code segment');
    for (const s of segs) assert.equal(s.vaddr % 4096, s.offset % 4096);
    const prefix = readOnlyPrefix(elf);
    assert.ok(prefix > 0 && prefix % 4096 === 0 && prefix < elf.length);
    for (const s of segs) assert.ok(s.offset < prefix + 4096);
  });

  it('refuses what is not a 64-bit little-endian ELF', () => {
    assert.deepEqual(textSegments(new Uint8Array(64)), []);
    assert.equal(readOnlyPrefix(new Uint8Array(64)), 0);
  });

  it('replaces the code and read-only data of one copy, never its RELRO or data', () => {
    const base = 0x7f0000000000n;
    const maps = [...copyMaps(base), ...copyMaps(0x7f1000000000n, '00:01', 78)];
    const todo = textMappings(maps, { dev: '00:01', inode: 77 }, SEGMENTS);
    assert.deepEqual(
      todo?.map((m) => [m.perms, m.offset]),
      [
        ['r--p', 0x0],
        ['r-xp', 0xa000],
        ['r--p', 0x91000],
      ],
    );
    assert.ok(
      todo?.every((m) => m.start >= base && m.start < base + 0x100000n),
      'this copy only',
    );
  });

  it('the mappings planned from the ELF and the load address are the ones the loader made', () => {
    const base = 0x7f0000000000n;
    const file = { dev: '00:01', inode: 77 };
    const planned = plannedMappings(base, SEGMENTS, file);
    assert.deepEqual(planned, textMappings(copyMaps(base), file, SEGMENTS));
    assert.deepEqual(
      planned.map((m) => m.perms),
      ['r--p', 'r-xp', 'r--p'],
    );
  });

  it('the real library: segments end where the next one starts, and the RELRO page is not among them', () => {
    const segs = textSegments(new Uint8Array(readFileSync(LIBTPMS)));
    const planned = plannedMappings(0n, segs, { dev: '00:00', inode: 1 });
    for (let i = 1; i < planned.length; i++) assert.ok(planned[i - 1]!.end <= planned[i]!.start);
    assert.equal(planned.filter((m) => m.perms === 'r-xp').length, 1);
  });

  it('another device with the same inode number is not the copy', () => {
    const todo = textMappings(
      copyMaps(0x7f0000000000n, 'fe:00'),
      { dev: '00:01', inode: 77 },
      SEGMENTS,
    );
    assert.equal(todo, undefined);
  });

  it('an executable mapping outside the code segment: nothing is replaced', () => {
    const maps = copyMaps(0x7f0000000000n);
    maps.push({ ...maps[4]!, perms: 'r-xp', start: maps[4]!.end, end: maps[4]!.end + 0x1000n });
    assert.equal(textMappings(maps, { dev: '00:01', inode: 77 }, SEGMENTS), undefined);
  });

  it('parses /proc/self/maps lines with device and inode', () => {
    const [m] = parseMaps(
      '7f5a5b796000-7f5a5b79a000 r--p 000dd000 00:01 4928                       /memfd:libtpms (deleted)\n',
    );
    assert.deepEqual(m, {
      start: 0x7f5a5b796000n,
      end: 0x7f5a5b79a000n,
      perms: 'r--p',
      offset: 0xdd000,
      dev: '00:01',
      inode: 4928,
      path: '/memfd:libtpms (deleted)',
    });
  });

  it('loaded copies run the library file and keep small memfds (TSWTPM_SHARE_TEXT=0: their own)', () => {
    const script = `
      import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
      const { loadLibtpmsCopy } = await import(${JSON.stringify(new URL('../../src/engine/copies.js', import.meta.url).href)});
      const { loadLibtpms } = await import(${JSON.stringify(new URL('../../src/engine/libtpms.js', import.meta.url).href)});
      loadLibtpms();
      loadLibtpmsCopy();
      loadLibtpmsCopy();
      const maps = readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('libtpms'));
      const memfdExec = maps.filter((l) => l.includes('memfd:') && / r-xp /.test(l)).length;
      const fileExec = maps.filter((l) => !l.includes('memfd:') && / r-xp /.test(l)).length;
      const sizes = readdirSync('/proc/self/fd').flatMap((f) => {
        try { return readlinkSync('/proc/self/fd/' + f).startsWith('/memfd:libtpms') ? [statSync('/proc/self/fd/' + f).blocks * 512] : []; } catch { return []; }
      });
      console.log(JSON.stringify({ memfdExec, fileExec, sizes }));
    `;
    const run = (env: NodeJS.ProcessEnv) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, ...env },
      });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { memfdExec: number; fileExec: number; sizes: number[] };
    };
    const shared = run({});
    assert.equal(shared.memfdExec, 0, 'no copy runs code from its memfd');
    assert.equal(shared.fileExec, 3, 'the first TPM and both copies run the file');
    assert.equal(shared.sizes.length, 2);
    for (const s of shared.sizes) assert.ok(s < 128 * 1024, `memfd keeps ${s} bytes`);
    const own = run({ TSWTPM_SHARE_TEXT: '0' });
    assert.equal(own.memfdExec, 2);
    for (const s of own.sizes) assert.ok(s > 512 * 1024, `memfd keeps ${s} bytes`);
  });
});
