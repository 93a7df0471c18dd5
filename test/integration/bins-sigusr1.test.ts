// SIGUSR1 makes Node open its inspector (a debugger on 127.0.0.1:9229 that runs any code
// in the process), where a C program would just die. Every bin replaces that trigger
// with a listener first; here the clients that block on a peer (tswtpm_ioctl,
// tswtpm_bios) get SIGUSR1 while they wait for a TPM that does not answer.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const bin = (name: string) => fileURLToPath(new URL(`../../../bin/${name}.js`, import.meta.url));

for (const [name, args] of [
  ['tswtpm_ioctl', (port: number) => ['--tcp', `127.0.0.1:${port}`, '-c']],
  ['tswtpm_bios', (port: number) => ['--tcp', `127.0.0.1:${port}`, '--tpm2']],
] as const) {
  test(`${name}: SIGUSR1 while waiting for the TPM opens no inspector`, async () => {
    const conns: net.Socket[] = [];
    const server = net.createServer((s) => conns.push(s));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const child = spawn(process.execPath, [bin(name), ...args(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    try {
      // Connected: the bin's first lines have run.
      while (conns.length === 0) await new Promise((r) => setTimeout(r, 10));
      child.kill('SIGUSR1');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(child.exitCode, null, 'still waiting for its answer');
      assert.doesNotMatch(stderr, /Debugger listening|inspector/i);
    } finally {
      for (const s of conns) s.destroy();
      server.close();
      if (child.exitCode === null) {
        const done = once(child, 'exit');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
        await done;
      }
    }
    assert.doesNotMatch(stderr, /Debugger listening|inspector/i);
  });
}
