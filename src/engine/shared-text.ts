/**
 * One copy of libtpms' code for every TPM in the process.
 *
 * Each extra TPM runs on its own copy of libtpms, loaded from its own memfd
 * (copies.ts): a new inode, so its own data, bss and heap, hence its own TPM. But a new
 * inode also means its own page cache, so each copy's machine code sat in its own
 * physical pages: with 100 TPMs answering at once the CPU ran 100 copies of the same
 * 540 KB of code, and caches and TLBs held a fraction of it. (100 swtpm processes share
 * one copy: they map the same file.) Driving 100 TPMs took the server twice the CPU per
 * command of driving 10 (bench/instances.ts).
 *
 * The code of a copy is the same bytes as the library file's, position-independent and
 * never written (libtpms has no text relocations: the loader patches only the GOT and
 * data), and so are its read-only segments (constants, symbol tables). So once a copy
 * is loaded, those pages are replaced with private mappings of the library file itself
 * at the same addresses and with the same protection (mmap MAP_FIXED): every copy then
 * runs on the file's own page cache pages, as the first TPM does, while its data, bss,
 * relocated RELRO pages and heap stay its own. Only mappings that lie wholly inside a
 * non-writable PT_LOAD segment of the ELF file are replaced, at the file offset that
 * segment maps them from; anything unexpected leaves the copy as it was.
 */
import { fstatSync, readFileSync } from 'node:fs';
import type { KoffiFunc } from 'koffi';
import { declareOnce, nativeKoffi, nativeLibc } from './native.js';

const PROT_READ = 1;
const PROT_EXEC = 4;
const MAP_PRIVATE = 2;
const MAP_FIXED = 0x10;
const PAGE = 4096;

/** A loadable, non-writable segment: where it sits in memory and in the file. */
export interface TextSegment {
  readonly vaddr: number;
  readonly offset: number;
  readonly filesz: number;
  readonly exec: boolean;
  /** Where the next PT_LOAD segment's first page starts (its pages are not this one's). */
  readonly limit: number;
}

/**
 * The non-writable PT_LOAD segments of a 64-bit little-endian ELF file (code, and the
 * read-only data the loader never writes: headers, symbol tables, constants); empty for
 * anything else. The RELRO part of the writable segment is not among them: the loader
 * relocates it before making it read-only.
 */
export function textSegments(elf: Uint8Array): TextSegment[] {
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const isElf64Le =
    elf.length >= 64 &&
    elf[0] === 0x7f &&
    elf[1] === 0x45 &&
    elf[2] === 0x4c &&
    elf[3] === 0x46 &&
    elf[4] === 2 && // ELFCLASS64
    elf[5] === 1; // ELFDATA2LSB
  if (!isElf64Le) return [];
  const phoff = Number(v.getBigUint64(32, true));
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  const loads: { flags: number; offset: number; vaddr: number; filesz: number }[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (p + 56 > elf.length) return [];
    if (v.getUint32(p, true) !== 1) continue; // PT_LOAD
    loads.push({
      flags: v.getUint32(p + 4, true),
      offset: Number(v.getBigUint64(p + 8, true)),
      vaddr: Number(v.getBigUint64(p + 16, true)),
      filesz: Number(v.getBigUint64(p + 32, true)),
    });
  }
  const out: TextSegment[] = [];
  for (const l of loads) {
    if ((l.flags & 2) !== 0) continue; // PF_W
    const next = loads.filter((o) => o.vaddr > l.vaddr).map((o) => o.vaddr - (o.vaddr % PAGE));
    out.push({
      offset: l.offset,
      vaddr: l.vaddr,
      filesz: l.filesz,
      exec: (l.flags & 1) !== 0,
      limit: Math.min(Number.MAX_SAFE_INTEGER, ...next),
    });
  }
  return out;
}

/** One line of /proc/self/maps (`dev` as it prints it: `major:minor`, hex). */
export interface Mapping {
  readonly start: bigint;
  readonly end: bigint;
  readonly perms: string;
  readonly offset: number;
  readonly dev: string;
  readonly inode: number;
  /** The mapped file's path (with " (deleted)" for an unlinked one), or undefined. */
  readonly path?: string;
}

/** A file's identity as /proc/self/maps shows it, from fstat(). */
export function fileId(fd: number): { dev: string; inode: number } {
  const st = fstatSync(fd);
  // Linux's dev_t: minor in bits 0-7 and 20-31, major in bits 8-19 and 32-43.
  const dev = BigInt(st.dev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const hex = (n: bigint, w: number) => n.toString(16).padStart(w, '0');
  return { dev: `${hex(major, 2)}:${hex(minor, 2)}`, inode: st.ino };
}

export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split('\n')) {
    const m =
      /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+) *(.*)$/.exec(line);
    if (m === null) continue;
    out.push({
      start: BigInt(`0x${m[1]}`),
      end: BigInt(`0x${m[2]}`),
      perms: m[3]!,
      offset: Number.parseInt(m[4]!, 16),
      dev: m[5]!,
      inode: Number(m[6]),
      ...(m[7] ? { path: m[7] } : {}),
    });
  }
  return out;
}

/**
 * The mappings of the object with inode `inode` to replace with the file's own pages:
 * its read-only private mappings (`r--p`, `r-xp`) that lie wholly inside one read-only
 * segment (page-rounded), at the offset that segment maps them from. Undefined when the
 * layout is not the expected one (no mapping at file offset 0 to find the load base, or
 * an executable mapping outside those segments): then nothing is replaced. The RELRO
 * pages (read-only, but relocated) are outside every such segment and stay.
 */
export function textMappings(
  maps: readonly Mapping[],
  file: { readonly dev: string; readonly inode: number },
  segments: readonly TextSegment[],
): Mapping[] | undefined {
  const mine = maps.filter((m) => m.inode === file.inode && m.dev === file.dev);
  const first = mine.find((m) => m.offset === 0);
  if (first === undefined || segments.length === 0) return undefined;
  const base = first.start;
  const out: Mapping[] = [];
  for (const m of mine) {
    if (m.perms[0] !== 'r' || m.perms[1] !== '-' || m.perms[3] !== 'p') continue;
    const rel = Number(m.start - base);
    const len = Number(m.end - m.start);
    const seg = segments.find((s) => {
      const lo = s.vaddr - (s.vaddr % PAGE);
      const hi = Math.ceil((s.vaddr + s.filesz) / PAGE) * PAGE;
      return rel >= lo && rel + len <= hi && m.offset === s.offset - (s.vaddr - rel);
    });
    if (seg === undefined) {
      if (m.perms[2] === 'x') return undefined;
      continue;
    }
    out.push(m);
  }
  return out.length > 0 ? out : undefined;
}

/**
 * Bytes at the start of the file that only non-writable segments map (page-rounded
 * down to the first writable segment's page): once no mapping uses them, a copy's memfd
 * need not hold them.
 */
export function readOnlyPrefix(elf: Uint8Array): number {
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (textSegments(elf).length === 0) return 0;
  const phoff = Number(v.getBigUint64(32, true));
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  let firstWritable = elf.length;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (v.getUint32(p, true) === 1 && (v.getUint32(p + 4, true) & 2) !== 0) {
      firstWritable = Math.min(firstWritable, Number(v.getBigUint64(p + 8, true)));
    }
  }
  return firstWritable - (firstWritable % PAGE);
}

interface Mm {
  readonly mmap: KoffiFunc<
    (addr: bigint, len: bigint, prot: number, flags: number, fd: number, off: bigint) => bigint
  >;
  readonly fallocate: KoffiFunc<(fd: number, mode: number, off: bigint, len: bigint) => number>;
  readonly dlopen: KoffiFunc<(file: string, mode: number) => bigint | null>;
  readonly dlinfo: KoffiFunc<(handle: bigint, request: number, out: unknown[]) => number>;
  readonly dlclose: KoffiFunc<(handle: bigint) => number>;
}

function declareMm(): Mm {
  const libc = nativeLibc();
  return {
    mmap: libc.func(
      'void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)',
    ) as never,
    fallocate: libc.func('int fallocate(int fd, int mode, long off, long len)') as never,
    dlopen: libc.func('void *dlopen(const char *file, int mode)') as never,
    dlinfo: libc.func('int dlinfo(void *handle, int request, _Out_ void **info)') as never,
    dlclose: libc.func('int dlclose(void *handle)') as never,
  };
}

/** fallocate(2): free the range, keep the file's size. */
const FALLOC_FL_KEEP_SIZE = 1;
const FALLOC_FL_PUNCH_HOLE = 2;
const RTLD_NOW = 2;
const RTLD_NOLOAD = 4;
const RTLD_DI_LINKMAP = 2;

/**
 * Where the loader put the object it loaded from `path` (glibc's `l_addr`, through
 * dlinfo() on a second, non-loading dlopen of the same name), or undefined.
 */
function loadBase(path: string): bigint | undefined {
  const { dlopen, dlinfo, dlclose } = declareOnce(declareMm);
  const handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (handle === null || handle === 0n) return undefined;
  try {
    const out: unknown[] = [null];
    if (dlinfo(handle, RTLD_DI_LINKMAP, out) !== 0 || out[0] === null) return undefined;
    // struct link_map starts with ElfW(Addr) l_addr
    return BigInt(nativeKoffi().decode(out[0], 'uint64_t') as number | bigint);
  } finally {
    dlclose(handle);
  }
}

/** The mappings a copy loaded at `base` has for the segments (what the loader made). */
export function plannedMappings(
  base: bigint,
  segments: readonly TextSegment[],
  file: { readonly dev: string; readonly inode: number },
): Mapping[] {
  return segments.map((s) => {
    const lo = s.vaddr - (s.vaddr % PAGE);
    const hi = Math.min(Math.ceil((s.vaddr + s.filesz) / PAGE) * PAGE, s.limit);
    return {
      start: base + BigInt(lo),
      end: base + BigInt(hi),
      perms: s.exec ? 'r-xp' : 'r--p',
      offset: s.offset - (s.vaddr - lo),
      ...file,
    };
  });
}

const same = (a: readonly Mapping[], b: readonly Mapping[]) =>
  a.length === b.length &&
  a.every((m, i) => m.start === b[i]!.start && m.end === b[i]!.end && m.offset === b[i]!.offset);

/**
 * Whether the plan matched /proc/self/maps for the first copy of this process (checked
 * once: reading the maps costs more with every copy loaded). Undefined until then.
 */
let planChecked: boolean | undefined;

/** What {@link shareText} did to one copy. */
export interface Shared {
  /** Bytes of the copy's address space now mapped from the library file. */
  readonly remapped: number;
  /** Bytes of the copy's memfd given back (no mapping used them any more). */
  readonly freed: number;
}

/**
 * Points the code and read-only data of the copy loaded from `copyPath` (its memfd
 * open as `copyFd`) at the pages of the library file open as `fileFd` (the same bytes),
 * then frees the part of the copy's memfd that nothing maps any more (`prefix` bytes
 * from its start, see {@link readOnlyPrefix}). The mappings come from the ELF segments
 * and the copy's load address; for the process' first copy they are checked against
 * /proc/self/maps (and nothing is shared in the process if they differ). The copy works
 * the same either way, with its own pages or the file's.
 */
export function shareText(
  copyPath: string,
  copyFd: number,
  fileFd: number,
  segments: readonly TextSegment[],
  prefix: number,
): Shared {
  if (planChecked === false || segments.length === 0) return { remapped: 0, freed: 0 };
  const copy = fileId(copyFd);
  const base = loadBase(copyPath);
  if (base === undefined) return { remapped: 0, freed: 0 };
  const todo = plannedMappings(base, segments, copy);
  const first = planChecked === undefined;
  if (first) {
    const seen = textMappings(parseMaps(readFileSync('/proc/self/maps', 'utf8')), copy, segments);
    planChecked = seen !== undefined && same(todo, seen);
    if (!planChecked) return { remapped: 0, freed: 0 };
  }
  const { mmap, fallocate } = declareOnce(declareMm);
  let remapped = 0;
  for (const m of todo) {
    const len = m.end - m.start;
    const prot = m.perms[2] === 'x' ? PROT_READ | PROT_EXEC : PROT_READ;
    const got = mmap(m.start, len, prot, MAP_PRIVATE | MAP_FIXED, fileFd, BigInt(m.offset));
    // The kernel refuses a bad fd or access before it touches the old mapping (MAP_FAILED,
    // the copy keeps its own pages); only running out of kernel memory midway could
    // leave the range unmapped.
    if (got !== m.start) return { remapped, freed: 0 };
    remapped += Number(len);
  }
  // Below `prefix` the loader mapped only the segments just replaced (checked in the
  // maps for the first copy).
  const stillMapped =
    first &&
    parseMaps(readFileSync('/proc/self/maps', 'utf8')).some(
      (m) => m.inode === copy.inode && m.dev === copy.dev && m.offset < prefix,
    );
  if (prefix <= 0 || stillMapped) return { remapped, freed: 0 };
  const rc = fallocate(copyFd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0n, BigInt(prefix));
  return { remapped, freed: rc === 0 ? prefix : 0 };
}
