#!/usr/bin/env node
// Makes the V8 code cache of the server bundle (scripts/bundle.js runs this right after
// writing the bundle): `dist/src/cli/server/tswtpm.bundle.cjs.v8cache`, which bin/tswtpm.js
// hands to vm.Script instead of compiling the bundle's functions again at every start
// (docs/performance.md, "Start-up": about 7 ms of a 50 ms start above `node -e 0`).
//
// A cache holds the functions compiled so far, so this runs what a start runs: the bundle
// is loaded exactly as the bin loads it and serves a TPM in this process (fresh state in
// a temp directory), answers one GetRandom on the data channel and one GET_CAPABILITY on
// the control channel; then the cache is written and the process ends. The data channel
// is TCP and the control channel a Unix socket, so that both kinds of listener and
// client are in the cache (a function missing from it is compiled at its first call, at
// a cost of up to ~0.5 ms each on a start here), and the seccomp filter goes in with
// action=log (nothing is denied: this process only writes the cache and exits). The file starts with the bundle's build id (its first line), so a
// cache is never used with another bundle; V8 refuses it on its own for another Node
// version or other V8 flags. Without libtpms (a build machine without libtpms0) no
// cache is made and the bin compiles the bundle as before.
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { compileBundle, cachePath } = require('../bin/tswtpm.js');

const BUNDLE = fileURLToPath(new URL('../dist/src/cli/server/tswtpm.bundle.cjs', import.meta.url));
const GET_RANDOM = Buffer.from('80010000000c0000017b0008', 'hex');
/** CMD_GET_CAPABILITY (control-channel.md): command 1, no payload. */
const GET_CAPABILITY = Buffer.from('00000001', 'hex');

/** A TCP port on 127.0.0.1 that was free a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Sends `req` to `to` (a Unix socket path or a TCP port on 127.0.0.1) and resolves with the first bytes that come back. */
function ask(to, req) {
  return new Promise((resolve, reject) => {
    const s =
      typeof to === 'number'
        ? connect(to, '127.0.0.1', () => s.write(req))
        : connect(to, () => s.write(req));
    s.once('data', (d) => {
      s.destroy();
      resolve(d);
    });
    s.once('error', reject);
  });
}

async function askWhenUp(to, req) {
  for (let i = 0; ; i++) {
    try {
      return await ask(to, req);
    } catch (e) {
      if (i > 500) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

const cache = cachePath(BUNDLE);
try {
  unlinkSync(cache);
} catch {}
const dir = mkdtempSync(join(tmpdir(), 'tswtpm-code-cache-'));
try {
  const { script, buildId, exports } = compileBundle(BUNDLE, undefined);
  const data = await freePort();
  const ctrl = join(dir, 'ctrl.sock');
  // (a kernel without seccomp: the filter's own code stays out of the cache)
  const seccomp = /^Seccomp:/m.test(readFileSync('/proc/self/status', 'utf8')) ? 'log' : 'none';
  exports.main([
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${dir}`,
    '--server',
    `type=tcp,port=${data}`,
    '--ctrl',
    `type=unixio,path=${ctrl}`,
    '--flags',
    'not-need-init,startup-clear',
    '--seccomp',
    `action=${seccomp}`,
  ]);
  const rsp = await askWhenUp(data, GET_RANDOM);
  if (rsp.readUInt32BE(6) !== 0) throw new Error(`GetRandom answered ${rsp.toString('hex')}`);
  await askWhenUp(ctrl, GET_CAPABILITY);
  writeFileSync(cache, Buffer.concat([Buffer.from(buildId), script.createCachedData()]));
  console.error(`code-cache: ${cache}`);
} catch (e) {
  console.error(`code-cache: no code cache (${e.message}); bin/tswtpm.js compiles the bundle`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
// The server is still running in this process.
process.exit(0);
