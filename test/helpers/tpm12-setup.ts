/**
 * For the TPM 1.2 provisioning tests: a private swtpm_localca configuration (so Debian's
 * swtpm_localca never touches /var/lib/swtpm-localca), a CertMaker that runs that
 * swtpm_localca through its plug-in contract (provisioning.md §3.2), a TpmLink over the
 * client library, a parser of swtpm's `--log level=20` traffic dump, and owner-authorized
 * TPM 1.2 reads (OIAP).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlClient } from '../../src/client/control.js';
import { TpmClient } from '../../src/client/tpm.js';
import { tpmCommand } from '../../src/protocol/tpm/commands.js';
import type { CertMaker, TpmLink } from '../../src/provision/link.js';
import { TAKE_OWNERSHIP_NONCE_ODD, oiapAuth } from '../../src/provision/tpm12-auth.js';
import { finishAuth1, oiap } from '../../src/provision/tpm12-commands.js';
import type { Swtpm } from './start-swtpm.js';

export interface LocalCa {
  readonly setupConf: string;
  readonly caConf: string;
  readonly optsFile: string;
}

/** swtpm_setup.conf + swtpm-localca.conf/.options with the CA state under `dir`. */
export function localCa(dir: string): LocalCa {
  const ca = join(dir, 'ca');
  mkdirSync(ca, { recursive: true });
  const caConf = join(dir, 'swtpm-localca.conf');
  const optsFile = join(dir, 'swtpm-localca.options');
  const setupConf = join(dir, 'swtpm_setup.conf');
  writeFileSync(
    caConf,
    `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`,
  );
  writeFileSync(
    optsFile,
    '--platform-manufacturer Fedora\n--platform-version 2.1\n--platform-model QEMU\n',
  );
  writeFileSync(
    setupConf,
    `create_certs_tool= /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${caConf}\ncreate_certs_tool_options = ${optsFile}\n`,
  );
  return { setupConf, caConf, optsFile };
}

function exec(
  file: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 60000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Debian's swtpm_localca as swtpm_setup calls it; records every request. */
export function localCaMaker(ca: LocalCa, tmp: string, seen: string[]): CertMaker {
  return async (req) => {
    const dir = mkdtempSync(join(tmp, 'certs-'));
    try {
      const s = req.spec;
      const args = ['--type', req.type, '--ek', req.ekParam, '--dir', dir];
      if (req.vmid !== undefined) args.push('--vmid', req.vmid);
      args.push('--tpm-spec-family', s.family, '--tpm-spec-level', String(s.level));
      args.push('--tpm-spec-revision', String(s.revision), '--tpm-manufacturer', s.manufacturer);
      args.push('--tpm-model', s.model, '--tpm-version', s.version);
      if (req.tpm2) args.push('--tpm2');
      args.push('--configfile', ca.caConf, '--optsfile', ca.optsFile);
      seen.push(args.join(' '));
      const r = await exec('/usr/bin/swtpm_localca', args);
      if (r.code !== 0) throw new Error(`swtpm_localca exit with status ${r.code}: ${r.stderr}`);
      return readFileSync(join(dir, `${req.type}.cert`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** A TpmLink over TpmClient + ControlClient to a started server; `close()` ends both. */
export function clientLink(s: Swtpm): TpmLink & { close(): Promise<void> } {
  const tpm = new TpmClient(s.server!);
  const ctrl = new ControlClient(s.ctrl);
  return {
    transmit: (c) => tpm.transmit(c),
    getInfo: (flags) => ctrl.getInfoText(flags),
    close: async () => {
      await tpm.close();
      await ctrl.close();
    },
  };
}

export interface Traffic {
  readonly kind: 'cmd' | 'rsp' | 'ctrl-cmd' | 'ctrl-rsp';
  readonly bytes: Buffer;
}

const HEADS: Array<[RegExp, Traffic['kind']]> = [
  [/^ SWTPM_IO_Read: length (\d+)$/, 'cmd'],
  [/^ SWTPM_IO_Write: length (\d+)$/, 'rsp'],
  [/^ Ctrl Cmd: length (\d+)$/, 'ctrl-cmd'],
  [/^ Ctrl Rsp: length (\d+)$/, 'ctrl-rsp'],
];
const HEX_LINE = /^ ((?:[0-9A-F]{2} )+)$/;

/** The data and control messages in a swtpm `--log level=20` file (libtpms trace lines skipped). */
export function parseTraffic(log: string): Traffic[] {
  const out: Traffic[] = [];
  let cur: { kind: Traffic['kind']; want: number; parts: Buffer[]; got: number } | undefined;
  for (const line of log.split('\n')) {
    const head = HEADS.find(([re]) => re.test(line));
    if (head) {
      cur = { kind: head[1], want: Number(head[0].exec(line)![1]), parts: [], got: 0 };
      if (cur.want === 0) out.push({ kind: cur.kind, bytes: Buffer.alloc(0) });
      continue;
    }
    const m = cur && HEX_LINE.exec(line);
    if (!cur || !m) continue;
    const b = Buffer.from(m[1]!.replaceAll(' ', ''), 'hex');
    cur.parts.push(b);
    cur.got += b.length;
    if (cur.got >= cur.want) {
      out.push({ kind: cur.kind, bytes: Buffer.concat(cur.parts).subarray(0, cur.want) });
      cur = undefined;
    }
  }
  return out;
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};

/** One owner-authorized (OIAP) TPM 1.2 command; resolves with the response. */
export async function ownerCommand(
  link: TpmLink,
  ownerSecret: Buffer,
  ordinal: number,
  params: Buffer,
): Promise<Buffer> {
  const s = Buffer.from(await link.transmit(oiap()));
  if (s.readUInt32BE(6) !== 0) throw new Error(`TPM_OIAP: 0x${s.readUInt32BE(6).toString(16)}`);
  const body = tpmCommand(0x00c2, ordinal, params);
  const nonceOdd = TAKE_OWNERSHIP_NONCE_ODD;
  const auth = oiapAuth(ownerSecret, body, s.subarray(14, 34), nonceOdd, 0);
  return Buffer.from(await link.transmit(finishAuth1(body, s.readUInt32BE(10), nonceOdd, 0, auth)));
}

/** TPM_OwnerReadInternalPub(TPM_KH_EK): the EK modulus. */
export async function ownerReadEk(link: TpmLink, ownerSecret: Buffer): Promise<Buffer> {
  const r = await ownerCommand(link, ownerSecret, 0x81, u32(0x40000006));
  if (r.readUInt32BE(6) !== 0)
    throw new Error(`OwnerReadInternalPub: 0x${r.readUInt32BE(6).toString(16)}`);
  return r.subarray(38, 38 + r.readUInt32BE(34));
}

/** TPM_NV_ReadValue with owner authorization. */
export async function ownerReadNv(link: TpmLink, ownerSecret: Buffer, index: number, size: number) {
  const r = await ownerCommand(
    link,
    ownerSecret,
    0xcf,
    Buffer.concat([u32(index), u32(0), u32(size)]),
  );
  if (r.readUInt32BE(6) !== 0) throw new Error(`NV_ReadValue: 0x${r.readUInt32BE(6).toString(16)}`);
  return r.subarray(14, 14 + r.readUInt32BE(10));
}

/** TPM_GetCapability(cap, u32 subCap): result code and the response data. */
export async function getCap12(link: TpmLink, cap: number, sub: number) {
  const r = Buffer.from(await link.transmit(tpmCommand(0x00c1, 0x65, u32(cap), u32(4), u32(sub))));
  const rc = r.readUInt32BE(6);
  return { rc, data: rc === 0 ? r.subarray(14, 14 + r.readUInt32BE(10)) : Buffer.alloc(0) };
}
