// The npm package as users get it: `npm pack` of this checkout (after the build), the
// tarball installed into an empty project, every declared bin, the swtpm-names wrappers
// and the library run from there (issue 13, "Packaging").
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  bin: Record<string, string>;
};
/** swtpm's program names and the tswtpm bin each wrapper runs (libexec/swtpm-names). */
const SWTPM_NAMES = ['swtpm', 'swtpm_setup', 'swtpm_ioctl', 'swtpm_localca', 'swtpm_bios'];
const skip =
  spawnSync('npm', ['--version']).status === 0
    ? false
    : 'npm is not installed (it comes with Node.js)';

/** swtpm_bios knows only -h (`--help` is an unknown option there, exit 1). */
const helpFlag = (program: string) => (program.endsWith('_bios') ? '-h' : '--help');

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
  return {
    status: r.status,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    out: `${r.stdout}${r.stderr}`,
  };
}

function ok(r: ReturnType<typeof sh>, what: string): string {
  assert.equal(r.status, 0, `${what} -> ${r.status}:\n${r.out}`);
  return r.stdout;
}

test(
  'npm pack ships only what users run; bins, swtpm names and the library work when installed',
  { skip, timeout: 300_000 },
  async (t) => {
    const work = mkdtempSync(join(tmpdir(), 'tswtpm-pack-'));
    try {
      // --ignore-scripts: `prepare` would rebuild; the suite runs after `npm run build`.
      const packed = ok(
        sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT),
        'npm pack',
      );
      const info = (
        JSON.parse(packed) as Array<{
          filename: string;
          entryCount: number;
          size: number;
          unpackedSize: number;
          files: Array<{ path: string }>;
        }>
      )[0]!;
      const files = info.files.map((f) => f.path);
      t.diagnostic(
        `tarball: ${info.entryCount} files, ${info.size} bytes (${info.unpackedSize} unpacked)`,
      );

      // Only what users run: no tests, benchmarks, TypeScript sources or source maps.
      for (const f of files) {
        assert.doesNotMatch(f, /^(dist\/(test|bench)|test|bench|src|scripts)\//, f);
        assert.ok(!f.endsWith('.ts') || f.endsWith('.d.ts'), `${f}: a TypeScript source`);
        assert.ok(!f.endsWith('.map'), `${f}: a source map without its sources`);
      }
      for (const f of [
        'README.md',
        'LICENSE',
        'package.json',
        'dist/src/index.js',
        'dist/src/index.d.ts',
        'dist/src/cli/server/tswtpm.bundle.cjs',
        // its V8 code cache (scripts/code-cache.js) and the CommonJS marker of bin/
        'dist/src/cli/server/tswtpm.bundle.cjs.v8cache',
        // the seccomp programs compiled at build time (scripts/seccomp-filters.js)
        'dist/src/cli/server/seccomp-filters.json',
        'bin/package.json',
      ])
        assert.ok(files.includes(f), `${f} is in the tarball`);
      for (const n of SWTPM_NAMES) assert.ok(files.includes(`libexec/swtpm-names/${n}`), n);
      // Every declared bin is shipped (a bin whose file is missing would break `npm install -g`).
      for (const [name, file] of Object.entries(PKG.bin)) {
        assert.ok(existsSync(join(ROOT, file)), `bin ${name}: ${file} exists`);
        assert.ok(
          files.includes(file.replace(/^\.\//, '')),
          `bin ${name}: ${file} is in the tarball`,
        );
      }

      // Installed into an empty project (dependencies from the npm cache where it has them).
      const proj = join(work, 'proj');
      mkdirSync(proj);
      writeFileSync(
        join(proj, 'package.json'),
        '{ "name": "uses-tswtpm", "private": true, "type": "module" }\n',
      );
      ok(
        sh(
          'npm',
          ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, info.filename)],
          proj,
        ),
        'npm install <tarball>',
      );
      const installed = join(proj, 'node_modules', PKG.name);

      // Each bin through node_modules/.bin: it starts, finds its modules, prints its usage.
      const bin = (n: string) => join(proj, 'node_modules', '.bin', n);
      assert.match(
        ok(sh(bin('tswtpm'), ['--version'], proj), 'tswtpm --version'),
        /^TPM emulator version /,
      );
      assert.match(
        ok(sh(bin('tswtpm_ioctl'), ['--help'], proj), 'tswtpm_ioctl --help'),
        /Usage: tswtpm_ioctl/,
      );
      for (const name of Object.keys(PKG.bin)) {
        const r = sh(bin(name), [helpFlag(name)], proj);
        assert.equal(r.status, 0, `${name} ${helpFlag(name)} -> ${r.status}:\n${r.out}`);
        assert.match(r.out, new RegExp(`^${name} \\[options\\]|Usage: ${name} `, 'm'), name);
      }

      // swtpm's names: each wrapper runs its tswtpm bin, also through a symlink elsewhere.
      const links = join(work, 'links');
      mkdirSync(links);
      const env = { ...process.env, PATH: `${dirname(process.execPath)}:/usr/bin:/bin` };
      for (const n of SWTPM_NAMES) {
        const wrapper = join(installed, 'libexec', 'swtpm-names', n);
        const target = `bin/t${n}.js`;
        assert.ok(
          readFileSync(wrapper, 'utf8').includes(`/../../${target}"`),
          `${n} runs ${target}`,
        );
        if (!existsSync(join(installed, target))) {
          t.diagnostic(`${n}: ${target} is not in this build yet; its wrapper is not run`);
          continue;
        }
        symlinkSync(wrapper, join(links, n));
        const direct = sh(process.execPath, [join(installed, target), helpFlag(n)], proj);
        for (const via of [wrapper, join(links, n)]) {
          const r = sh(via, [helpFlag(n)], proj, env);
          assert.deepEqual([r.status, r.out], [direct.status, direct.out], `${via} --help`);
        }
      }
      assert.match(
        ok(sh(join(links, 'swtpm'), ['--version'], proj, env), 'swtpm --version'),
        /^TPM emulator version .*tswtpm/,
      );

      // The library from the installed package: startTpm spawns the installed bin/tswtpm.js
      // (`tswtpm socket`), which answers TPM2_GetRandom.
      writeFileSync(
        join(proj, 'check.mjs'),
        `import { readFileSync } from 'node:fs';
import { TSWTPM_BIN, startTpm, tpm2 } from '${PKG.name}';
import { TPM2_SETUP_DEFAULTS, linkOf, setupTpm2 } from '${PKG.name}/provision';
const t = await startTpm({ tpm2: true });
try {
  const random = tpm2.parseGetRandom(await t.tpm.transmit(tpm2.getRandom(16)));
  const cmdline = readFileSync('/proc/' + t.pid + '/cmdline', 'utf8').split('\\0');
  // Its seccomp filter is in, and came from the package's compiled programs (no libseccomp).
  const status = readFileSync('/proc/' + t.pid + '/status', 'utf8');
  const filtered = /^Seccomp:\\s+2$/m.test(status);
  const libseccomp = readFileSync('/proc/' + t.pid + '/maps', 'utf8').includes('libseccomp');
  // tswtpm/provision: an EK on the spawned TPM.
  const ek = [];
  await setupTpm2(linkOf(t), TPM2_SETUP_DEFAULTS, undefined, { info: (l) => ek.push(l), error: (l) => ek.push(l) });
  console.log(JSON.stringify({ bin: TSWTPM_BIN, random: random.length, cmdline, ek, filtered, libseccomp }));
} finally {
  await t.close();
}
`,
      );
      const res = JSON.parse(ok(sh(process.execPath, ['check.mjs'], proj), 'check.mjs')) as {
        bin: string;
        random: number;
        cmdline: string[];
        ek: string[];
        filtered: boolean;
        libseccomp: boolean;
      };
      assert.equal(res.bin, join(installed, 'bin', 'tswtpm.js'));
      assert.equal(res.random, 16);
      assert.deepEqual(res.cmdline.slice(1, 3), [res.bin, 'socket']);
      assert.deepEqual([res.filtered, res.libseccomp], [true, false]);
      assert.ok(
        res.ek.includes('Successfully created RSA 2048 EK with handle 0x81010001.'),
        res.ek.join('\n'),
      );

      // Its type declarations resolve for a TypeScript user (tsc of this checkout).
      writeFileSync(
        join(proj, 'check.ts'),
        `import { type RunningTpm, startTpm, tpm2 } from '${PKG.name}';\nexport async function f(): Promise<number> {\n  const t: RunningTpm = await startTpm({ tpm2: true });\n  return tpm2.parseGetRandom(await t.tpm.transmit(tpm2.getRandom(8))).length;\n}\n`,
      );
      writeFileSync(
        join(proj, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            target: 'ES2022',
            strict: true,
            noEmit: true,
            skipLibCheck: true,
            types: ['node'],
            typeRoots: [join(ROOT, 'node_modules', '@types')],
          },
          files: ['check.ts'],
        }),
      );
      ok(
        sh(
          process.execPath,
          [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', proj],
          proj,
        ),
        'tsc',
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
);
