// chardev --vtpm-proxy on the host (which has no vTPM proxy module; the QEMU guest test
// creates real devices): swtpm's implied settings whatever the option order, and the
// errors of the open and of the ioctl as errno values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs } from '../../src/cli/server/args.js';
import { VtpmProxyError, createVtpmProxy } from '../../src/transport/vtpm-proxy.js';

test('--vtpm-proxy implies not-need-init, startup-clear, allow-set-locality, terminate', () => {
  const plain = parseArgs('chardev', ['--tpm2']);
  assert.equal(plain.vtpmProxy, false);
  assert.deepEqual(
    [
      plain.flags.notNeedInit,
      plain.flags.startup,
      plain.locality.allowSetLocality,
      plain.terminate,
    ],
    [false, undefined, false, false],
  );
  const c = parseArgs('chardev', ['--vtpm-proxy', '--tpm2']);
  assert.equal(c.vtpmProxy, true);
  assert.deepEqual(
    [c.flags.notNeedInit, c.flags.startup, c.locality.allowSetLocality, c.terminate],
    [true, 'clear', true, true],
  );
});

test('--vtpm-proxy: --flags may name another startup type, in either order; --locality keeps SET_LOCALITY allowed', () => {
  for (const args of [
    ['--flags', 'startup-none', '--vtpm-proxy'],
    ['--vtpm-proxy', '--flags', 'startup-none'],
  ]) {
    assert.equal(parseArgs('chardev', args).flags.startup, 'none', args.join(' '));
  }
  const s = parseArgs('chardev', ['--vtpm-proxy', '--flags', 'startup-state']);
  assert.equal(s.flags.startup, 'state');
  // not-need-init alone names no startup type: Startup(CLEAR) stays.
  const n = parseArgs('chardev', ['--flags', 'not-need-init', '--vtpm-proxy']);
  assert.equal(n.flags.startup, 'clear');
  const l = parseArgs('chardev', ['--vtpm-proxy', '--locality', 'reject-locality-4']);
  assert.deepEqual(l.locality, { rejectLocality4: true, allowSetLocality: true });
});

test('createVtpmProxy reports the failed call and its errno', () => {
  assert.throws(
    () => createVtpmProxy(true, '/nonexistent/vtpmx'),
    (e) => e instanceof VtpmProxyError && e.syscall === 'open' && e.code === 'ENOENT',
  );
  // /dev/null takes the open but not the ioctl: the errno comes back through koffi.
  assert.throws(
    () => createVtpmProxy(true, '/dev/null'),
    (e) => e instanceof VtpmProxyError && e.syscall === 'ioctl' && e.code === 'ENOTTY',
  );
});
