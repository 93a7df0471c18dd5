// Builds Jazzer.js's native addon (jazzerjs.node) on this machine, once.
//
// Why: @jazzer.js/fuzzer 2.1.0 (pinned in package.json) ships its C++ sources but no
// binary; its install script downloads a prebuild from GitHub or else compiles against a
// patched libFuzzer that CMake fetches from GitHub. Neither is reachable here, so
// package.json denies that script (allowScripts) and this file compiles the addon with
// g++ against Debian's stock libFuzzer (libclang-rt-14-dev), plus
// test/fuzz/native/jazzer-upstream-libfuzzer.cpp, which supplies the few entry points
// of Jazzer's libFuzzer fork the addon uses. (@jazzer.js 4.x ships prebuilds only, and
// they need glibc 2.38 / GLIBCXX_3.4.32; Debian 12 has 2.36 / 3.4.30.)
// The result goes where `bindings` looks: node_modules/@jazzer.js/fuzzer/build/Release.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const FLAGS = ['-std=c++17', '-O2', '-fPIC', '-DNAPI_VERSION=4', '-w'];

/** Debian's libFuzzer without main(), from libclang-rt-<N>-dev. */
function findLibFuzzer() {
  const found = [];
  for (const llvm of readdirSync('/usr/lib').filter((d) => d.startsWith('llvm-'))) {
    const clang = join('/usr/lib', llvm, 'lib/clang');
    if (!existsSync(clang)) continue;
    for (const v of readdirSync(clang)) {
      const a = join(clang, v, 'lib/linux/libclang_rt.fuzzer_no_main-x86_64.a');
      if (existsSync(a)) found.push(a);
    }
  }
  if (found.length === 0) {
    throw new Error(
      'fuzz: libFuzzer not found; install libclang-rt-14-dev (scripts/install-deps.sh)',
    );
  }
  return found.sort().at(-1);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`fuzz: ${cmd} failed building the Jazzer.js addon`);
}

/**
 * Makes sure the addon is built from the current sources; returns the versions used.
 * @param {string} root the repository
 */
export function ensureAddon(root) {
  const pkg = join(root, 'node_modules/@jazzer.js/fuzzer');
  const version = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version;
  const native = join(root, 'test/fuzz/native');
  const libFuzzer = findLibFuzzer();
  const sources = [
    ...readdirSync(pkg).filter((f) => f.endsWith('.cpp')),
    ...readdirSync(join(pkg, 'shared'))
      .filter((f) => f.endsWith('.cpp'))
      .map((f) => `shared/${f}`),
  ].map((f) => join(pkg, f));
  const shim = join(native, 'jazzer-upstream-libfuzzer.cpp');
  const hash = createHash('sha256');
  for (const f of [...sources, shim, join(native, 'fuzzer/FuzzerDefs.h'), libFuzzer]) {
    hash.update(f).update(readFileSync(f));
  }
  hash.update(FLAGS.join(' '));
  const stamp = hash.digest('hex');
  const outDir = join(pkg, 'build/Release');
  const out = join(outDir, 'jazzerjs.node');
  const stampFile = join(outDir, 'tswtpm-build.sha256');
  const info = { version, libFuzzer };
  if (existsSync(out) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
    return info;
  }
  console.log(`fuzz: building the Jazzer.js ${version} addon against ${libFuzzer}`);
  mkdirSync(outDir, { recursive: true });
  const includes = [
    `-I${native}`,
    `-I${join(root, 'node_modules/node-addon-api')}`,
    `-I${join(root, 'node_modules/node-api-headers/include')}`,
  ];
  const shimObj = join(outDir, 'jazzer-upstream-libfuzzer.o');
  // The addon's own __sanitizer_acquire_crash_state always grants; ours grants once.
  run('g++', [...FLAGS, '-fno-ipa-icf', '-c', shim, '-o', shimObj]);
  run('g++', [
    ...FLAGS,
    '-shared',
    '-D__sanitizer_acquire_crash_state=jazzer_addon_acquire_crash_state_unused',
    ...includes,
    '-o',
    out,
    ...sources,
    shimObj,
    '-Wl,--whole-archive',
    libFuzzer,
    '-Wl,--no-whole-archive',
    '-lpthread',
  ]);
  writeFileSync(stampFile, stamp);
  return info;
}
