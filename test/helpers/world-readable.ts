// Tests that start tswtpm as another uid (nobody) need a copy of the program that uid can
// read: a checkout inside `mktemp -d` (mode 0700) is not, and node then fails with
// "Cannot find module .../bin/tswtpm.js". This copies what `tswtpm socket` runs (bin/,
// dist/src without source maps, package.json, koffi) into a fresh directory that every
// uid can traverse and read.
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The modules `tswtpm socket` loads from node_modules. */
const MODULES = ['koffi', '@koromix/koffi-linux-x64'];

export interface SharedCopy {
  /** bin/tswtpm.js of the copy. */
  readonly bin: string;
  remove(): void;
}

/** Every directory from `dir` up to / lets others in (the x bit for "other"). */
function traversable(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (d === dirname(d)) return true;
  }
}

/** Copies the runnable package to a world-readable temporary directory. */
export function worldReadableCopy(): SharedCopy {
  const parent = traversable(tmpdir()) ? tmpdir() : '/tmp';
  const dir = mkdtempSync(join(parent, 'tswtpm-shared-'));
  chmodSync(dir, 0o755);
  const copy = (from: string, to = from) =>
    cpSync(join(ROOT, from), join(dir, to), {
      recursive: true,
      dereference: true,
      filter: (src) => !src.endsWith('.map'),
    });
  copy('package.json');
  copy('bin');
  copy('dist/src');
  // No dist/.tsbuildinfo, as in an installed package: the bins then run their bundles
  // (cpSync does not keep mtimes, so a copied .tsbuildinfo would look newer than them,
  // and tswtpm_localca's modules need node_modules that are not copied).
  for (const m of MODULES) {
    try {
      copy(join('node_modules', m));
    } catch {
      // (an optional platform package that is not installed here)
    }
  }
  chmodRecursive(dir);
  return {
    bin: join(dir, 'bin', 'tswtpm.js'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** a+rX over the tree: a umask of 077 would otherwise keep the copy private too. */
function chmodRecursive(p: string): void {
  const st = statSync(p);
  const x = st.isDirectory() || (st.mode & 0o100) !== 0;
  chmodSync(p, st.mode | (x ? 0o555 : 0o444));
  if (st.isDirectory()) for (const n of readdirSync(p)) chmodRecursive(join(p, n));
}
