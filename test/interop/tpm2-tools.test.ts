// tpm2-tools 5.4 drive tswtpm through tpm2-tss's tcti-swtpm, over TCP
// (`-T swtpm:port=P`, control channel on P+1) and Unix sockets (`-T swtpm:path=S`,
// control channel on S.ctrl). tcti-swtpm opens a control connection for
// SET_LOCALITY and a data connection per command, as it does with swtpm.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Server, type Transport, scratchDir, startServer } from '../helpers/diff-servers.js';
import { extendChain } from '../helpers/tpm-commands.js';

const haveTools = spawnSync('tpm2_startup', ['--version']).status === 0;

interface Run {
  readonly status: number | null;
  readonly out: string;
  readonly err: string;
}

/** Runs one tool (asynchronously: tswtpm is served by another process, but keep the loop free). */
function tool(tcti: string, cwd: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(args[0]!, args.slice(1), {
      cwd,
      env: { ...process.env, TPM2TOOLS_TCTI: tcti },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const t = setTimeout(() => p.kill('SIGKILL'), 30000);
    p.once('error', reject);
    p.once('close', (status) => {
      clearTimeout(t);
      resolve({ status, out, err });
    });
  });
}

for (const transport of ['tcp', 'unix'] as Transport[]) {
  describe(
    `tpm2-tools over ${transport}`,
    { skip: !haveTools && 'tpm2-tools not installed' },
    () => {
      let server: Server;
      let tcti: string;
      let cwd: string;
      const ok = async (...args: string[]) => {
        const r = await tool(tcti, cwd, args);
        assert.equal(r.status, 0, `${args.join(' ')} failed:\n${r.err}\n${server.output()}`);
        return r.out;
      };

      before(async () => {
        server = await startServer('tswtpm', { transport, flags: 'not-need-init' });
        const data = server.data!;
        tcti = 'port' in data ? `swtpm:port=${data.port}` : `swtpm:path=${data.path}`;
        cwd = join(scratchDir(), `tools-${transport}`);
        mkdirSync(cwd);
      });
      after(() => server?.stop());

      it('tpm2_startup -c', async () => {
        await ok('tpm2_startup', '-c');
      });

      it('tpm2_getrandom', async () => {
        const a = (await ok('tpm2_getrandom', '16', '--hex')).trim();
        const b = (await ok('tpm2_getrandom', '16', '--hex')).trim();
        assert.match(a, /^[0-9a-f]{32}$/);
        assert.notEqual(a, b);
      });

      it('tpm2_pcrextend then tpm2_pcrread shows the extended value', async () => {
        const d = randomBytes(32);
        await ok('tpm2_pcrextend', `16:sha256=${d.toString('hex')}`);
        const out = await ok('tpm2_pcrread', 'sha256:16');
        assert.match(out, new RegExp(`16: 0x${extendChain(d)}`, 'i'));
      });

      it('createprimary, create, load, sign, verifysignature', async () => {
        await ok('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'primary.ctx');
        // No resource manager between the tools and the TPM: free the object slots.
        await ok('tpm2_flushcontext', '-t');
        await ok(
          'tpm2_create',
          '-C',
          'primary.ctx',
          '-G',
          'ecc',
          '-u',
          'key.pub',
          '-r',
          'key.priv',
        );
        await ok('tpm2_flushcontext', '-t');
        await ok(
          'tpm2_load',
          '-C',
          'primary.ctx',
          '-u',
          'key.pub',
          '-r',
          'key.priv',
          '-c',
          'key.ctx',
        );
        await ok('tpm2_flushcontext', '-t');
        writeFileSync(join(cwd, 'msg'), 'signed by tswtpm\n');
        writeFileSync(join(cwd, 'other'), 'not what was signed\n');
        await ok('tpm2_sign', '-c', 'key.ctx', '-g', 'sha256', '-o', 'sig', 'msg');
        await ok('tpm2_verifysignature', '-c', 'key.ctx', '-g', 'sha256', '-m', 'msg', '-s', 'sig');
        const bad = await tool(tcti, cwd, [
          'tpm2_verifysignature',
          ...['-c', 'key.ctx', '-g', 'sha256', '-m', 'other', '-s', 'sig'],
        ]);
        assert.notEqual(bad.status, 0, 'a signature over other data must not verify');
      });

      it('nvdefine, nvwrite, nvread return what was written', async () => {
        const data = randomBytes(32);
        writeFileSync(join(cwd, 'nvdata'), data);
        await ok('tpm2_nvdefine', '0x1500016', '-C', 'o', '-s', '32', '-a', 'ownerread|ownerwrite');
        await ok('tpm2_nvwrite', '0x1500016', '-C', 'o', '-i', 'nvdata');
        await ok('tpm2_nvread', '0x1500016', '-C', 'o', '-s', '32', '-o', 'nvout');
        assert.deepEqual(readFileSync(join(cwd, 'nvout')), data);
        await ok('tpm2_nvundefine', '0x1500016', '-C', 'o');
      });
    },
  );
}
