// The matrix of undecodable state files (issue 14 item 2): how each permall is damaged
// or which --key reads it, and what Debian's swtpm 0.7.1 answers to PTM_INIT for it.
// (A hex key file that is not the writer's key and a truncated plain file were also
// measured: they answer as `pwdfile` and `truncated`.)
// test/interop/state-errors-diff.test.ts runs it against swtpm and tswtpm over TCP;
// the CUSE guest test (test/guest/init) runs it against `tswtpm cuse`. docs/compat.md
// ("State errors") lists the same results.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Version = '1.2' | '2.0';

/** TPM_DECRYPT_ERROR, TPM_BAD_KEY_PROPERTY, TPM_FAIL (tpm_error.h), TPM_RC_FAILURE. */
const DECRYPT = 0x21;
const KEY_SIZE = 0x28;
const FAIL = 0x09;
const RC_FAILURE = 0x101;

export const KEY_HEX = '000102030405060708090a0b0c0d0e0f';
const WRONG_HEX = 'f0e0d0c0b0a090807060504030201000';
const KEY256_HEX = `${KEY_HEX}${KEY_HEX}`;

/** Key files in `dir`, named as the `--key` arguments below refer to them. */
export function writeKeyFiles(dir: string): void {
  writeFileSync(join(dir, 'k128'), `${KEY_HEX}\n`);
  writeFileSync(join(dir, 'w128'), `${WRONG_HEX}\n`);
  writeFileSync(join(dir, 'k256'), `${KEY256_HEX}\n`);
}

/** How the intact state was written: `--key file=k128,mode=aes-cbc,format=hex`, or no key. */
export type Written = 'aes128' | 'plain';

export const WRITE_KEY = (keyDir: string): string[] => [
  '--key',
  `file=${join(keyDir, 'k128')},mode=aes-cbc,format=hex`,
];

export interface StateCase {
  readonly name: string;
  readonly written: Written;
  /** `--key` arguments when the state is read (key files in `keyDir`). */
  readonly key: (keyDir: string) => string[];
  readonly mangle?: (b: Buffer) => Buffer;
  /** PTM_INIT result of swtpm 0.7.1 and tswtpm, per TPM version. */
  readonly init: Readonly<Record<Version, number>>;
  /** Where swtpm 0.7.1 answers otherwise (a docs/compat.md row says why). */
  readonly swtpmInit?: Partial<Record<Version, number>>;
}

const flip = (at: number) => (b: Buffer) => {
  const c = Buffer.from(b);
  c[at] = (c[at] ?? 0) ^ 0x55;
  return c;
};

export const CASES: readonly StateCase[] = [
  {
    // The case: written with the key file as a hex key, read with it as a password.
    name: 'pwdfile',
    written: 'aes128',
    key: (d) => ['--key', `pwdfile=${join(d, 'k128')}`],
    init: { '1.2': DECRYPT, '2.0': RC_FAILURE },
  },
  {
    name: 'wrong-key-size',
    written: 'aes128',
    key: (d) => ['--key', `file=${join(d, 'k256')},mode=aes-256-cbc,format=hex`],
    init: { '1.2': KEY_SIZE, '2.0': RC_FAILURE },
  },
  {
    name: 'no-key',
    written: 'aes128',
    key: () => [],
    init: { '1.2': FAIL, '2.0': RC_FAILURE },
  },
  {
    name: 'hmac-mismatch',
    written: 'aes128',
    key: (d) => ['--key', `file=${join(d, 'k128')},format=hex`],
    mangle: flip(60),
    init: { '1.2': DECRYPT, '2.0': RC_FAILURE },
  },
  {
    name: 'bad-header',
    written: 'aes128',
    key: (d) => ['--key', `file=${join(d, 'k128')},format=hex`],
    mangle: flip(0),
    init: { '1.2': FAIL, '2.0': RC_FAILURE },
  },
  {
    name: 'truncated',
    written: 'aes128',
    key: (d) => ['--key', `file=${join(d, 'k128')},format=hex`],
    mangle: (b) => b.subarray(0, b.length - 100),
    init: { '1.2': FAIL, '2.0': RC_FAILURE },
  },
  {
    name: 'plain-with-key',
    written: 'plain',
    key: (d) => ['--key', `file=${join(d, 'k128')},format=hex`],
    init: { '1.2': FAIL, '2.0': RC_FAILURE },
  },
  {
    // 0.7.1 hands a file whose header fails its checks to libtpms as a legacy blob;
    // libtpms 0.9's TPM 2 code then runs on it (docs/compat.md, deliberate improvements).
    name: 'plain-bad-header',
    written: 'plain',
    key: () => [],
    mangle: flip(0),
    init: { '1.2': FAIL, '2.0': RC_FAILURE },
    swtpmInit: { '2.0': 0 },
  },
  {
    // The length of the first TLV (bytes 12..15 after the 10-byte header and tag).
    name: 'plain-bad-tlv',
    written: 'plain',
    key: () => [],
    mangle: flip(12),
    init: { '1.2': FAIL, '2.0': RC_FAILURE },
  },
];

export const permallName = (v: Version) => (v === '2.0' ? 'tpm2-00.permall' : 'tpm-00.permall');

/** Copies the intact permall from `from` into a new `dir`, damaged as the case says. */
export function prepareCase(c: StateCase, v: Version, from: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const f = permallName(v);
  copyFileSync(join(from, f), join(dir, f));
  if (c.mangle) writeFileSync(join(dir, f), c.mangle(readFileSync(join(dir, f))));
}

/** swtpm_ioctl's line for a failed PTM_INIT (empty for success). */
export const initLine = (rc: number): string =>
  rc === 0 ? '' : `TPM result from PTM_INIT: 0x${rc.toString(16)}`;

/**
 * Lays the matrix out for the CUSE guest (test/guest/init) under `out/se`, with key
 * files at `<guestRoot>/se/keys`: `se/<v12|v2>/<group>/args` holds the `--key`
 * arguments one `tswtpm cuse` process runs with, and each case of that group is a
 * directory with the damaged permall and `expect`, the PTM_INIT line swtpm_ioctl
 * prints (empty: success). The TPM 1.2 `pwdfile` group also gets `nni`: that case is
 * run once more with `--flags not-need-init`. `writer` writes the intact states (on the host).
 * Every `tswtpm cuse` start and every TPM 1.2 MainInit (its self-test) costs seconds
 * under TCG, so only the cases named in `names` run (plus `intact`, for TPM 1.2): the
 * device code is the same for every case; one per distinct result is enough.
 */
export async function writeGuestCases(
  out: string,
  guestRoot: string,
  writer: (v: Version, written: Written, dir: string, keyDir: string) => Promise<void>,
  names: Readonly<Record<Version, readonly string[]>>,
): Promise<void> {
  const keyDir = join(out, 'se', 'keys');
  mkdirSync(keyDir, { recursive: true });
  writeKeyFiles(keyDir);
  const guestKeys = join(guestRoot, 'se', 'keys');
  const intact: StateCase = {
    name: 'intact',
    written: 'aes128',
    key: (d) => ['--key', `file=${join(d, 'k128')},format=hex`],
    init: { '1.2': 0, '2.0': 0 },
  };
  for (const v of ['1.2', '2.0'] as const) {
    const base = join(out, 'se', `base-${v}`);
    for (const w of ['aes128', 'plain'] as const) {
      mkdirSync(join(base, w), { recursive: true });
      await writer(v, w, join(base, w), keyDir);
    }
    const groups = new Map<string, StateCase[]>();
    const wanted = [
      ...CASES.filter((x) => names[v].includes(x.name)),
      ...(v === '1.2' ? [intact] : []),
    ];
    for (const c of wanted) {
      const args = c.key(guestKeys).join(' ');
      groups.set(args, [...(groups.get(args) ?? []), c]);
    }
    let g = 0;
    for (const [args, cases] of groups) {
      const gdir = join(out, 'se', v === '2.0' ? 'v2' : 'v12', `g${g++}`);
      mkdirSync(gdir, { recursive: true });
      writeFileSync(join(gdir, 'args'), `${args}\n`);
      for (const c of cases) {
        prepareCase(c, v, join(base, c.written), join(gdir, c.name));
        writeFileSync(join(gdir, c.name, 'expect'), `${initLine(c.init[v])}\n`);
        if (c.name === 'pwdfile' && v === '1.2') writeFileSync(join(gdir, 'nni'), `${c.name}\n`);
      }
    }
  }
}
