// libtpms's OpenSSL calls must reach the system's libcrypto.so.3, not the OpenSSL that
// the node executable exports (libtpms-engine.md §2.1, pitfall 7): libtpms is loaded
// with RTLD_DEEPBIND. A server start dlopen()s it ahead of time on the thread pool
// (src/engine/prefetch.ts), and an object's symbols are bound by its first load, so the
// prefetch must use the same flags. The dynamic linker's own record (LD_DEBUG=bindings)
// is checked for a `tswtpm socket` start that answered a command.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { getRandom2 } from '../../src/protocol/tpm/commands.js';
import { startTpm, stopAll, tempDir, tpmOnce } from '../helpers/spawn-tswtpm.js';

after(stopAll);

/** `binding file A [0] to B [0]: normal symbol `S' ...` lines whose file A is libtpms. */
function libtpmsBindings(log: string): { to: string; symbol: string }[] {
  const out: { to: string; symbol: string }[] = [];
  for (const m of log.matchAll(
    /binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `([^']+)'/g,
  )) {
    if (/\/libtpms\.so/.test(m[1]!)) out.push({ to: m[2]!, symbol: m[3]! });
  }
  return out;
}

test('a server start binds libtpms to the system libcrypto, not to node (RTLD_DEEPBIND)', async () => {
  const logs = tempDir('tswtpm-lddebug-');
  const s = await startTpm({
    flags: 'not-need-init,startup-clear',
    env: { ...process.env, LD_DEBUG: 'bindings', LD_DEBUG_OUTPUT: join(logs, 'ld') },
  });
  // A command that uses libcrypto (the DRBG) once the TPM runs.
  const rsp = await tpmOnce(s.data!, getRandom2(16));
  assert.equal(rsp.readUInt32BE(6), 0, 'GetRandom answered TPM_RC_SUCCESS');
  await s.p.stop();
  const files = readdirSync(logs).filter((f) => f.startsWith('ld.'));
  assert.ok(files.length > 0, 'LD_DEBUG wrote its log');
  const log = files.map((f) => readFileSync(join(logs, f), 'utf8')).join('');
  const b = libtpmsBindings(log);
  const crypto = b.filter((x) => /^(EVP_|RAND_|BN_|RSA_|EC_|OSSL_|CRYPTO_|ERR_)/.test(x.symbol));
  assert.ok(crypto.length > 50, `libtpms bound its OpenSSL symbols (${crypto.length})`);
  const wrong = crypto.filter((x) => !/\/libcrypto\.so\.3$/.test(x.to));
  assert.deepEqual(
    wrong.slice(0, 5),
    [],
    `${wrong.length} OpenSSL symbols of libtpms bound outside libcrypto.so.3`,
  );
});
