// The FUSE/CUSE codec against the real uapi header: a tiny C program compiled with the
// system's <linux/fuse.h> (Debian linux-libc-dev) prints sizeof/offsetof of every struct
// field and every constant our codec uses, and builds messages with the C structs whose
// bytes our decoder and encoder must match.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  CONSTANTS,
  FUSE_KERNEL_MINOR_VERSION,
  LAYOUTS,
  decodeRequest,
  encodeCuseInitReply,
  encodeIoctlReply,
  encodeIoctlRetry,
  encodeOpenReply,
  encodeWriteReply,
} from '../../src/protocol/fuse/index.js';

const HEADER = '/usr/include/linux/fuse.h';
const gcc = spawnSync('gcc', ['--version']).status === 0;
const skip = !gcc
  ? 'gcc is not installed (apt install gcc libc6-dev)'
  : !existsSync(HEADER)
    ? `${HEADER} is missing (apt install linux-libc-dev)`
    : false;

let dir = '';
let lines: Map<string, string> = new Map();

function cProgram(): string {
  const out: string[] = [
    '#include <stdio.h>',
    '#include <stddef.h>',
    '#include <string.h>',
    '#include <stdint.h>',
    '#include <linux/fuse.h>',
    'static void hex(const char *k, const void *p, size_t n) {',
    '  const unsigned char *b = p; printf("%s ", k);',
    '  for (size_t i = 0; i < n; i++) printf("%02x", b[i]); printf("\\n"); }',
    'int main(void) {',
  ];
  for (const s of LAYOUTS) {
    out.push(`  printf("${s.name} %zu\\n", sizeof(struct ${s.name}));`);
    for (const f of Object.keys(s.fields)) {
      out.push(
        `  printf("${s.name}.${f} %zu %zu\\n", offsetof(struct ${s.name}, ${f}), sizeof(((struct ${s.name} *)0)->${f}));`,
      );
    }
  }
  for (const c of Object.keys(CONSTANTS)) out.push(`  printf("${c} %lld\\n", (long long)(${c}));`);
  // Messages built with the C structs (the kernel's view).
  out.push(
    '  { struct { struct fuse_in_header h; struct cuse_init_in i; } m; memset(&m, 0, sizeof m);',
    '    m.h.len = sizeof m; m.h.opcode = CUSE_INIT; m.h.unique = 2;',
    '    m.i.major = 7; m.i.minor = 38; m.i.flags = CUSE_UNRESTRICTED_IOCTL; hex("req_init", &m, sizeof m); }',
    '  { struct { struct fuse_in_header h; struct fuse_ioctl_in i; uint32_t loc; } __attribute__((packed)) m;',
    '    memset(&m, 0, sizeof m);',
    '    m.h.len = sizeof m; m.h.opcode = FUSE_IOCTL; m.h.unique = 0x1234; m.h.uid = 1000; m.h.gid = 100; m.h.pid = 4242;',
    '    m.i.fh = 7; m.i.cmd = 0xc0045004u; m.i.arg = 0x7ffe12345678ull; m.i.in_size = 4; m.i.out_size = 4; m.loc = 3;',
    '    hex("req_ioctl", &m, sizeof m); }',
    '  { struct { struct fuse_in_header h; struct fuse_write_in w; unsigned char d[3]; } __attribute__((packed)) m;',
    '    memset(&m, 0, sizeof m); m.h.len = sizeof m; m.h.opcode = FUSE_WRITE; m.h.unique = 8;',
    '    m.w.fh = 1; m.w.size = 3; m.w.write_flags = FUSE_WRITE_LOCKOWNER; m.w.lock_owner = 99; m.w.flags = 0100002;',
    '    m.d[0] = 0x80; m.d[1] = 0x01; m.d[2] = 0xff; hex("req_write", &m, sizeof m); }',
    '  { struct { struct fuse_in_header h; struct fuse_read_in r; } m; memset(&m, 0, sizeof m);',
    '    m.h.len = sizeof m; m.h.opcode = FUSE_READ; m.h.unique = 10; m.r.fh = 1; m.r.size = 4096;',
    '    m.r.read_flags = FUSE_READ_LOCKOWNER; m.r.flags = 0104002; hex("req_read", &m, sizeof m); }',
    '  { struct { struct fuse_out_header h; struct cuse_init_out o; char s[14]; } __attribute__((packed)) m;',
    '    memset(&m, 0, sizeof m); m.h.len = sizeof m; m.h.unique = 2; m.o.major = 7; m.o.minor = 38;',
    '    m.o.max_read = 65536; m.o.max_write = 65536; m.o.dev_major = 10; m.o.dev_minor = 224;',
    '    memcpy(m.s, "DEVNAME=vtpm0", 14); hex("rsp_init", &m, sizeof m); }',
    '  { struct { struct fuse_out_header h; struct fuse_open_out o; } m; memset(&m, 0, sizeof m);',
    '    m.h.len = sizeof m; m.h.unique = 4; m.o.fh = 1; hex("rsp_open", &m, sizeof m); }',
    '  { struct { struct fuse_out_header h; struct fuse_write_out o; } m; memset(&m, 0, sizeof m);',
    '    m.h.len = sizeof m; m.h.unique = 8; m.o.size = 12; hex("rsp_write", &m, sizeof m); }',
    '  { struct { struct fuse_out_header h; struct fuse_ioctl_out o; uint64_t caps; } m; memset(&m, 0, sizeof m);',
    '    m.h.len = sizeof m; m.h.unique = 6; m.caps = 0x16fff; hex("rsp_ioctl", &m, sizeof m); }',
    '  { struct { struct fuse_out_header h; struct fuse_ioctl_out o; struct fuse_ioctl_iovec v[2]; } m;',
    '    memset(&m, 0, sizeof m); m.h.len = sizeof m; m.h.unique = 12; m.o.flags = FUSE_IOCTL_RETRY;',
    '    m.o.in_iovs = 1; m.o.out_iovs = 1; m.v[0].base = m.v[1].base = 0x7ffe0000; m.v[0].len = m.v[1].len = 4;',
    '    hex("rsp_retry", &m, sizeof m); }',
    '  return 0; }',
  );
  return out.join('\n');
}

before(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'tswtpm-fuseh-'));
  writeFileSync(join(dir, 'l.c'), cProgram());
  execFileSync('gcc', ['-Wall', '-o', join(dir, 'l'), join(dir, 'l.c')]);
  const text = execFileSync(join(dir, 'l'), { encoding: 'utf8' });
  lines = new Map(
    text
      .trim()
      .split('\n')
      .map((l) => {
        const i = l.indexOf(' ');
        return [l.slice(0, i), l.slice(i + 1)] as [string, string];
      }),
  );
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const cBytes = (k: string): Buffer => Buffer.from(lines.get(k) ?? '', 'hex');

test('struct sizes and field offsets match linux/fuse.h', { skip }, () => {
  for (const s of LAYOUTS) {
    assert.equal(Number(lines.get(s.name)), s.size, `sizeof(struct ${s.name})`);
    for (const [f, [off, size]] of Object.entries(s.fields)) {
      assert.equal(lines.get(`${s.name}.${f}`), `${off} ${size}`, `${s.name}.${f} offset/size`);
    }
  }
});

test('opcodes and flags match linux/fuse.h', { skip }, () => {
  for (const [name, value] of Object.entries(CONSTANTS)) {
    if (name === 'FUSE_KERNEL_MINOR_VERSION') {
      // A newer header is fine (layouts only grow at the end); an older one is not.
      assert.ok(Number(lines.get(name)) >= FUSE_KERNEL_MINOR_VERSION, `${name} ${lines.get(name)}`);
      continue;
    }
    assert.equal(Number(lines.get(name)), value, name);
  }
});

test('requests built with the C structs decode', { skip }, () => {
  const init = decodeRequest(cBytes('req_init'));
  assert.equal(init.op, 'CUSE_INIT');
  assert.equal(init.h.len, 56); // observed in the guest
  if (init.op === 'CUSE_INIT') assert.deepEqual([init.major, init.minor, init.flags], [7, 38, 1]);

  const io = decodeRequest(cBytes('req_ioctl'));
  assert.equal(io.h.len, 76); // PTM_SET_LOCALITY as observed
  assert.equal(io.op, 'IOCTL');
  if (io.op === 'IOCTL') {
    assert.equal(io.cmd, 0xc0045004);
    assert.equal(io.arg, 0x7ffe12345678n);
    assert.deepEqual([io.fh, io.inSize, io.outSize], [7n, 4, 4]);
    assert.deepEqual([io.h.uid, io.h.gid, io.h.pid, io.h.unique], [1000, 100, 4242, 0x1234n]);
    assert.equal(io.data.toString('hex'), '03000000');
  }

  const w = decodeRequest(cBytes('req_write'));
  assert.equal(w.op, 'WRITE');
  if (w.op === 'WRITE') {
    assert.equal(w.data.toString('hex'), '8001ff');
    assert.equal(w.flags, 0o100002);
  }

  const r = decodeRequest(cBytes('req_read'));
  assert.equal(r.h.len, 80);
  if (r.op === 'READ') assert.deepEqual([r.fh, r.size, r.flags], [1n, 4096, 0o104002]);
  else assert.fail('not a READ');
});

test('replies are byte-identical to the C structs', { skip }, () => {
  const init = encodeCuseInitReply(
    2n,
    { major: 7, minor: 38, flags: 0, maxRead: 65536, maxWrite: 65536, devMajor: 10, devMinor: 224 },
    ['DEVNAME=vtpm0'],
  );
  assert.equal(init.length, 102); // 16 + 72 + 14, as observed
  assert.equal(init.toString('hex'), cBytes('rsp_init').toString('hex'));
  assert.equal(encodeOpenReply(4n, 1n, 0).toString('hex'), lines.get('rsp_open'));
  assert.equal(encodeWriteReply(8n, 12).toString('hex'), lines.get('rsp_write'));
  const caps = Buffer.alloc(8);
  caps.writeBigUInt64LE(0x16fffn);
  assert.equal(encodeIoctlReply(6n, 0, caps).toString('hex'), lines.get('rsp_ioctl'));
  const v = { base: 0x7ffe0000n, len: 4 };
  assert.equal(encodeIoctlRetry(12n, [v], [v]).toString('hex'), lines.get('rsp_retry'));
});
