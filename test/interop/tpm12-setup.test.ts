import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { tpmCommand } from '../../src/protocol/tpm/commands.js';
import {
  EK_CERT_NV_INDEX,
  PLATFORM_CERT_NV_INDEX,
  nvDefineSpace,
  nvWriteValue,
} from '../../src/provision/tpm12-commands.js';
import { type Tpm12SetupOptions, setupTpm12 } from '../../src/provision/tpm12.js';
import { run, tempDir } from '../helpers/procs.js';
import { TSWTPM, startSwtpm } from '../helpers/start-swtpm.js';
import {
  type Traffic,
  clientLink,
  getCap12,
  localCa,
  localCaMaker,
  ownerReadEk,
  ownerReadNv,
  parseTraffic,
} from '../helpers/tpm12-setup.js';

// setupTpm12 against C swtpm 0.7.1 and tswtpm (TPM 1.2), compared with Debian's
// swtpm_setup 0.7.1 on C swtpm: same log lines, same command bytes (apart from the
// random OAEP blocks, session handle, HMAC and certificate contents), and states that
// load in both servers with the owner set, the same NV indices and a locked NV.

const HAVE = (await run('swtpm_setup', ['--version'])).code !== 127;
const work = tempDir('tpm12-setup-');
after(() => work.remove());
const ca = localCa(work.path);
const OWNER = createHash('sha1').update('x').digest();
const FLAGS = ['not-need-init', 'startup-clear'];

interface Run {
  readonly state: string;
  readonly traffic: Traffic[];
  readonly lines: string[];
  readonly certFiles: string;
}

const FULL_ARGS = [
  ...['--createek', '--take-ownership', '--ownerpass', 'x', '--srkpass', 'y'],
  ...['--create-ek-cert', '--create-platform-cert', '--lock-nvram'],
];

async function debianRun(name = 'debian', flags = FULL_ARGS): Promise<Run> {
  const dir = join(work.path, name);
  const state = join(dir, 'state');
  const certFiles = join(dir, 'certfiles');
  mkdirSync(state, { recursive: true });
  mkdirSync(certFiles);
  const log = join(dir, 'swtpm.log');
  const wrap = join(dir, 'swtpm.sh');
  writeFileSync(wrap, `#!/bin/sh\nexec swtpm "$@" --log file=${log},level=20\n`);
  chmodSync(wrap, 0o755);
  const r = await run('swtpm_setup', [
    ...['--tpm-state', state, '--tpm', `${wrap} socket`, '--config', ca.setupConf],
    ...flags,
    ...['--write-ek-cert-files', certFiles],
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => /^Successfully (c|t|l)/.test(l));
  return { state, traffic: parseTraffic(readFileSync(log, 'utf8')), lines, certFiles };
}

const OPTS: Tpm12SetupOptions = {
  createEk: true,
  takeOwnership: true,
  ownerPassword: 'x',
  srkPassword: 'y',
  createEkCert: true,
  createPlatformCert: true,
  lockNvram: true,
};

async function ourRun(name: string, command?: readonly string[], options = OPTS) {
  const dir = join(work.path, name);
  const state = join(dir, 'state');
  const certFiles = join(dir, 'certfiles');
  mkdirSync(state, { recursive: true });
  mkdirSync(certFiles);
  const log = join(dir, 'swtpm.log');
  const args = ['--log', `file=${log},level=20`];
  const s = await startSwtpm({
    tpm2: false,
    server: 'unix',
    flags: FLAGS,
    stateDir: state,
    args,
    ...(command ? { command } : {}),
  });
  const link = clientLink(s);
  const lines: string[] = [];
  const seen: string[] = [];
  try {
    const opts = { ...options, writeEkCertFilesDir: certFiles };
    await setupTpm12(link, opts, localCaMaker(ca, dir, seen), (l) => lines.push(l));
  } finally {
    await link.close();
    await s.close();
  }
  return { state, traffic: parseTraffic(readFileSync(log, 'utf8')), lines, certFiles, seen };
}

/** Data commands and CMD_GET_INFO, with what differs from run to run zeroed. */
function commands(t: Traffic[]): string[] {
  const out: string[] = [];
  for (const { kind, bytes } of t) {
    if (kind === 'ctrl-cmd' && bytes.readUInt32BE(0) === 0x12)
      out.push(`GET_INFO ${bytes.toString('hex')}`);
    if (kind !== 'cmd') continue;
    const b = Buffer.from(bytes);
    const ord = b.readUInt32BE(6);
    if (ord === 0x0d) {
      b.fill(0, 16, 16 + 256); // encOwnerAuth (random OAEP seed)
      b.fill(0, 20 + 256, 20 + 512); // encSrkAuth
      b.fill(0, b.length - 45, b.length - 41); // authHandle
      b.fill(0, b.length - 20); // HMAC over the random nonceEven
    }
    if (ord === 0xcc) b.fill(0, 77, 81); // dataSize: the certificate's length
    const shown = ord === 0xcd ? b.subarray(0, 18) : b; // WriteValue: index and offset only
    if (ord === 0xcd) shown.fill(0, 2, 6);
    out.push(shown.toString('hex'));
  }
  return out;
}

/** What a TPM 1.2 state shows when loaded in `command` (C swtpm by default). */
async function inspect(state: string, command?: readonly string[]) {
  const copy = join(work.path, `inspect-${Math.random().toString(36).slice(2)}`);
  cpSync(state, copy, { recursive: true });
  const s = await startSwtpm({
    tpm2: false,
    server: 'unix',
    flags: FLAGS,
    stateDir: copy,
    ...(command ? { command } : {}),
  });
  const link = clientLink(s);
  try {
    const readPubek = Buffer.from(await link.transmit(tpmCommand(0xc1, 0x7c, Buffer.alloc(20))));
    const owner = await getCap12(link, 5, 0x111); // TPM_CAP_PROPERTY, TPM_CAP_PROP_OWNER
    const ekPub = await getCap12(link, 0x11, EK_CERT_NV_INDEX); // TPM_CAP_NV_INDEX
    const platPub = await getCap12(link, 0x11, PLATFORM_CERT_NV_INDEX);
    const size = (p: Buffer) => p.readUInt32BE(p.length - 4);
    const write = Buffer.from(
      await link.transmit(nvWriteValue(EK_CERT_NV_INDEX, Buffer.from([1]))),
    );
    const define = Buffer.from(await link.transmit(nvDefineSpace(0x1000f003, 0x20002, 8)));
    const ek = await ownerReadEk(link, OWNER);
    const ekNv = await ownerReadNv(link, OWNER, EK_CERT_NV_INDEX, size(ekPub.data));
    const platNv = await ownerReadNv(link, OWNER, PLATFORM_CERT_NV_INDEX, size(platPub.data));
    const masked = (p: Buffer) =>
      Buffer.concat([p.subarray(0, p.length - 4), Buffer.alloc(4)]).toString('hex');
    return {
      view: {
        readPubekRc: readPubek.readUInt32BE(6),
        owner: owner.data.toString('hex'),
        ekNvPublic: masked(ekPub.data),
        platformNvPublic: masked(platPub.data),
        unauthWriteRc: write.readUInt32BE(6),
        defineAfterLockRc: define.readUInt32BE(6),
        ekNvHeader: [
          ekNv.readUInt16BE(0),
          ekNv[2],
          ekNv.readUInt16BE(3) - ekNv.length + 5,
          ekNv.readUInt16BE(5),
        ],
        platformNvHeader: [
          platNv.readUInt16BE(0),
          platNv[2],
          platNv.readUInt16BE(3) - platNv.length + 5,
        ],
      },
      ek,
      ekCert: new X509Certificate(ekNv.subarray(7)),
      ekNvSize: size(ekPub.data),
      ekNv,
    };
  } finally {
    await link.close();
    await s.close();
  }
}

const modulus = (c: X509Certificate) =>
  Buffer.from(c.publicKey.export({ format: 'jwk' }).n as string, 'base64url');

test('setupTpm12 = Debian swtpm_setup 0.7.1 on C swtpm and tswtpm', { skip: !HAVE }, async () => {
  const theirs = await debianRun();
  const onC = await ourRun('ours-c');
  const onTs = await ourRun('ours-ts', TSWTPM);

  // Log lines of these steps, in order.
  assert.deepEqual(theirs.lines, [
    'Successfully created EK.',
    'Successfully took ownership of the TPM.',
    'Successfully created NVRAM area for EK certificate.',
    'Successfully created NVRAM area for Platform certificate.',
    'Successfully locked NVRAM access.',
  ]);
  assert.deepEqual(onC.lines, theirs.lines);
  assert.deepEqual(onTs.lines, theirs.lines);
  // The certificate tool saw the TPM 1.2 spec values and the EK, ek then platform.
  assert.match(
    onC.seen[0]!,
    /^--type ek --ek [0-9a-f]{512} --dir .* --tpm-spec-family 1\.2 --tpm-spec-level 2 --tpm-spec-revision 116 /,
  );
  assert.match(onC.seen[1]!, /^--type platform /);

  // The same commands, byte for byte outside the random parts.
  const want = commands(theirs.traffic);
  assert.equal(want.length, 13, want.join('\n'));
  assert.deepEqual(commands(onC.traffic), want);
  assert.deepEqual(commands(onTs.traffic), want);

  // Each state loads in C swtpm (and Debian's and ours in tswtpm) and shows the same.
  const views = await Promise.all([
    inspect(theirs.state),
    inspect(onC.state),
    inspect(onTs.state),
    inspect(theirs.state, TSWTPM),
    inspect(onTs.state, TSWTPM),
  ]);
  const [ref] = views;
  assert.notEqual(ref!.view.readPubekRc, 0, 'ReadPubek refused once owned');
  assert.equal(ref!.view.owner, '01');
  assert.notEqual(ref!.view.unauthWriteRc, 0);
  assert.notEqual(ref!.view.defineAfterLockRc, 0);
  for (const v of views) {
    assert.deepEqual(v.view, ref!.view);
    // The EK the TPM reports is the key in the certificate stored in NV.
    assert.deepEqual(modulus(v.ekCert), v.ek);
  }
  assert.equal(ref!.view.ekNvPublic.slice(-26, -8), '001700020002000000'); // TPM_NV_ATTRIBUTES 0x00020002
  // --write-ek-cert-files: the DER without the TCG header, mode 0640, same name.
  for (const [r, v] of [
    [theirs, views[0]!],
    [onC, views[1]!],
    [onTs, views[2]!],
  ] as const) {
    assert.deepEqual(readdirSync(r.certFiles), ['ek-rsa2048.crt']);
    const f = join(r.certFiles, 'ek-rsa2048.crt');
    assert.deepEqual(readFileSync(f), v.ekNv.subarray(7));
    assert.equal(statSync(f).mode & 0o777, 0o640);
  }
});

test(
  'well-known secrets, no certificates: same commands; the owner secret is SHA-1 of 20 zeros',
  { skip: !HAVE },
  async () => {
    const flags = ['--take-ownership', '--owner-well-known', '--srk-well-known', '--lock-nvram'];
    const theirs = await debianRun('debian-wk', flags);
    const opts = { takeOwnership: true, wellKnownOwner: true, wellKnownSrk: true, lockNvram: true };
    const ours = await ourRun('ours-wk', undefined, opts);
    assert.deepEqual(theirs.lines, [
      'Successfully created EK.',
      'Successfully took ownership of the TPM.',
      'Successfully locked NVRAM access.',
    ]);
    assert.deepEqual(ours.lines, theirs.lines);
    assert.deepEqual(commands(ours.traffic), commands(theirs.traffic));
    assert.deepEqual(readdirSync(ours.certFiles), []);
    const zeros = createHash('sha1').update(Buffer.alloc(20)).digest();
    for (const state of [theirs.state, ours.state]) {
      const copy = join(work.path, `wk-${Math.random().toString(36).slice(2)}`);
      cpSync(state, copy, { recursive: true });
      const s = await startSwtpm({ tpm2: false, server: 'unix', flags: FLAGS, stateDir: copy });
      const link = clientLink(s);
      try {
        assert.equal((await ownerReadEk(link, zeros)).length, 256);
        // A second run on the same TPM: the EK exists, so the step fails as swtpm_setup's would.
        await assert.rejects(
          setupTpm12(link, { createEk: true }, undefined, () => {}),
          {
            name: 'Tpm12SetupError',
            message: /^TPM_CreateEndorsementKeyPair failed: 0x[0-9a-f]+$/,
          },
        );
      } finally {
        await link.close();
        await s.close();
      }
    }
  },
);
