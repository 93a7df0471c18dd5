/**
 * The command sequences of swtpm_bios (provisioning.md §6.2, §6.3). A step runs only
 * while every transfer so far worked; a TPM error does not stop the sequence. As in
 * swtpm_bios, the result code of the last successful transfer is what each step checks,
 * so a failed transfer repeats the previous error line.
 */
import { randomBytes } from 'node:crypto';
import { tpmCommand } from '../../protocol/tpm/commands.js';
import {
  TPM_PHYSICAL_PRESENCE_CMD_ENABLE,
  TPM_PHYSICAL_PRESENCE_LOCK,
  TPM_PHYSICAL_PRESENCE_NOTPRESENT,
  TPM_PHYSICAL_PRESENCE_PRESENT,
  continueSelfTest,
  getCapabilityPermFlags,
  physicalEnable,
  physicalSetDeactivated,
  startup12,
  tscPhysicalPresence,
} from '../../provision/tpm12-commands.js';
import { type BiosTarget, talk } from './bios-talk.js';

/** swtpm_bios' timeouts: TPM_DURATION_SHORT, and TPM_DURATION_LONG for ContinueSelfTest. */
const SHORT = 20;
const LONG = 600;
/** Startup parameter meaning "no TPM_Startup" (`-n`; `-d` on TPM 2). */
export const NO_STARTUP = 0xff;
/** Byte of the TPM_GetCapability(permanent flags) response holding `deactivated`. */
const DEACTIVATED_AT = 18;

const TPM2_ST_NO_SESSIONS = 0x8001;
const TPM2_ST_SESSIONS = 0x8002;
const TPM2_CC_HIERARCHY_CHANGE_AUTH = 0x129;
const TPM2_CC_INCREMENTAL_SELF_TEST = 0x142;
const TPM2_CC_STARTUP = 0x144;
const TPM2_RH_PLATFORM = 0x4000000c;
const TPM2_RS_PW = 0x40000009;
/** swtpm_bios 0.10's algorithm for IncrementalSelfTest (0.7.1 sends SHA-1, 0x0004). */
const TPM2_ALG_SHA256 = 0x000b;

export interface BiosPlan {
  readonly doMore: boolean;
  readonly contSelfTest: boolean;
  /** TPM_STARTUP_TYPE for TPM 1.2, or NO_STARTUP. */
  readonly startup12: number;
  /** TPM2_SU for TPM 2, or NO_STARTUP. */
  readonly startup2: number;
  readonly unassertPp: boolean;
  readonly ensureActivated: boolean;
}

export interface BiosIo {
  out(s: string): void;
  err(s: string): void;
}

const hex8 = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** Runs the steps; each returns its response or undefined. Tracks swtpm_bios' state. */
class Steps {
  ret = 0;
  errcode = 0;
  tpmError = false;
  constructor(
    private readonly t: BiosTarget,
    private readonly io: BiosIo,
  ) {}

  /** One command; `report` prints the error line when the (last known) code is non-zero. */
  async step(cmd: Uint8Array, seconds: number, report: (code: string) => string, toOut = false) {
    const rsp = await talk(this.t, cmd, seconds, this.io.err);
    if (rsp === undefined) this.ret = -1;
    else this.errcode = rsp.readUInt32BE(6);
    if (this.errcode !== 0) {
      this.tpmError = true;
      (toOut ? this.io.out : this.io.err)(`${report(hex8(this.errcode))}\n`);
    }
    return rsp;
  }

  /** swtpm_bios' exit status: 0, 0x80 for TPM errors, 0x81, or -1 (255) for transport. */
  result(): number {
    const r = this.ret === 0 && this.tpmError ? 0x80 : this.ret;
    return r & 0xff;
  }
}

const ppLine = (what: string) => (c: string) =>
  `TSC_PhysicalPresence(${what}) returned error code ${c}`;

/** TPM 1.2: Startup, PP, (GetCapability), enable, activate, ContinueSelfTest, PP lock. */
export async function tpm12Bios(t: BiosTarget, p: BiosPlan, io: BiosIo): Promise<number> {
  const s = new Steps(t, io);
  if (p.startup12 !== NO_STARTUP) {
    const hex2 = p.startup12.toString(16).padStart(2, '0');
    await s.step(
      startup12(p.startup12),
      SHORT,
      (c) => `TPM_Startup(0x${hex2}) returned error code ${c}`,
    );
  }
  if (s.ret === 0 && p.doMore) {
    await s.step(
      tscPhysicalPresence(TPM_PHYSICAL_PRESENCE_CMD_ENABLE),
      SHORT,
      ppLine('CMD_ENABLE'),
    );
  }
  if (s.ret === 0 && p.doMore) {
    await s.step(tscPhysicalPresence(TPM_PHYSICAL_PRESENCE_PRESENT), SHORT, ppLine('PRESENT'));
  }
  let deactivated = 0;
  if (s.ret === 0 && p.doMore && p.ensureActivated) {
    const line = (c: string) => `TPM_GetCapability() returned error code ${c}`;
    const rsp = await s.step(getCapabilityPermFlags(), SHORT, line);
    deactivated = rsp?.[DEACTIVATED_AT] ?? 0;
  }
  if (s.ret === 0 && p.doMore) {
    await s.step(physicalEnable(), SHORT, (c) => `TPM_PhysicalEnable returned error code ${c}`);
  }
  if (s.ret === 0 && p.doMore) {
    const line = (c: string) => `TPM_PhysicalSetDeactivated returned error code ${c}`;
    await s.step(physicalSetDeactivated(0), SHORT, line);
    if (p.ensureActivated && deactivated !== 0) {
      s.ret = 0x81;
      io.out('TPM requires a reset\n');
    }
  }
  if (s.ret === 0 && p.contSelfTest) {
    await s.step(continueSelfTest(), LONG, (c) => `TPM_ContinueSelfTest returned error code ${c}`);
  }
  if (s.ret === 0 && p.unassertPp) {
    await s.step(
      tscPhysicalPresence(TPM_PHYSICAL_PRESENCE_CMD_ENABLE),
      SHORT,
      ppLine('CMD_ENABLE'),
    );
  }
  if (s.ret === 0 && p.unassertPp) {
    const pp = TPM_PHYSICAL_PRESENCE_NOTPRESENT | TPM_PHYSICAL_PRESENCE_LOCK;
    await s.step(tscPhysicalPresence(pp), SHORT, ppLine('NOT_PRESENT|LOCK'));
  }
  return s.result();
}

const u16 = (v: number) => Buffer.from([(v >> 8) & 0xff, v & 0xff]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};

/** TPM2_HierarchyChangeAuth(platform) to 20 random bytes; continueSession set as swtpm_bios does. */
function hierarchyChangeAuth(): Buffer {
  const session = Buffer.concat([u32(TPM2_RS_PW), u16(0), Buffer.from([1]), u16(0)]);
  const auth = randomBytes(20);
  return tpmCommand(
    TPM2_ST_SESSIONS,
    TPM2_CC_HIERARCHY_CHANGE_AUTH,
    u32(TPM2_RH_PLATFORM),
    u32(session.length),
    session,
    u16(auth.length),
    auth,
  );
}

/** TPM 2: Startup, IncrementalSelfTest, platform hierarchy password. Errors go to stdout. */
export async function tpm2Bios(t: BiosTarget, p: BiosPlan, io: BiosIo): Promise<number> {
  const s = new Steps(t, io);
  if (p.startup2 !== NO_STARTUP) {
    const cmd = tpmCommand(TPM2_ST_NO_SESSIONS, TPM2_CC_STARTUP, u16(p.startup2));
    await s.step(cmd, SHORT, (c) => `TPM2_Startup returned error code ${c}`, true);
  }
  if (s.ret === 0 && p.contSelfTest) {
    const cmd = tpmCommand(
      TPM2_ST_NO_SESSIONS,
      TPM2_CC_INCREMENTAL_SELF_TEST,
      u32(1),
      u16(TPM2_ALG_SHA256),
    );
    await s.step(cmd, SHORT, (c) => `TPM2_IncrementalSelfTest returned error code ${c}`, true);
  }
  if (s.ret === 0 && p.unassertPp) {
    const line = (c: string) => `TPM2_HierarchyChangeAuth returned error code ${c}`;
    await s.step(hierarchyChangeAuth(), SHORT, line, true);
  }
  return s.result();
}
