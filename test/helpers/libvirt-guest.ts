// The guest of test/interop/libvirt.test.ts: Debian's kernel booted directly with an
// initrd holding only test/guest/libvirt-init.c (a static /init of ~13 KiB; see that
// file for why it must stay small), and the domain XML libvirt runs it with. The /init
// reports on the serial console, which libvirt appends to a file.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const INIT_C = fileURLToPath(new URL('../../../test/guest/libvirt-init.c', import.meta.url));

/** Compiles /init and packs it as a newc cpio; returns the initrd's path. */
export function buildInitrd(dir: string): string {
  const root = join(dir, 'initrd-root');
  mkdirSync(root, { recursive: true });
  const cc = spawnSync(
    'gcc',
    [
      ...['-static', '-nostdlib', '-ffreestanding', '-fno-builtin', '-Os'],
      ...['-fno-stack-protector', '-s', '-o', join(root, 'init'), INIT_C],
    ],
    { encoding: 'utf8' },
  );
  if (cc.status !== 0) throw new Error(`gcc libvirt-init.c: ${cc.stderr}`);
  const initrd = join(dir, 'initrd');
  const cpio = spawnSync('cpio', ['-o', '-H', 'newc', '--quiet', '-R', '0:0'], {
    cwd: root,
    input: 'init\n',
  });
  if (cpio.status !== 0) throw new Error(`cpio: ${cpio.stderr}`);
  writeFileSync(initrd, cpio.stdout);
  return initrd;
}

export interface DomainSpec {
  readonly name: string;
  readonly uuid: string;
  readonly kernel: string;
  readonly initrd: string;
  readonly serial: string;
  /** A libvirt secret's UUID: the vTPM state is then encrypted with it. */
  readonly secret?: string;
}

/** A TCG domain without disks or NICs, with a tpm-crb vTPM (libvirt's swtpm backend). */
export function domainXml(d: DomainSpec): string {
  const enc = d.secret === undefined ? '' : `<encryption secret='${d.secret}'/>`;
  return `<domain type='qemu'>
  <name>${d.name}</name>
  <uuid>${d.uuid}</uuid>
  <memory unit='MiB'>160</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>${d.kernel}</kernel>
    <initrd>${d.initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='${d.serial}' append='on'/><target port='0'/></serial>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'>${enc}</backend></tpm>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** What one boot printed. */
export interface Boot {
  /** PCRs 0–7 of the sha256 bank, upper-case hex. */
  readonly pcrs: string[];
  /**
   * TPM2_ReadClock's clockInfo resetCount and restartCount (undefined before the line
   * came). One of them advances at each start of a kept state: resetCount after an
   * unorderly end (swtpm 0.7.1), restartCount after the automatic TPM2_Shutdown(STATE)
   * at exit (swtpm 0.8+, tswtpm: docs/compat.md).
   */
  readonly counts: readonly [number, number] | undefined;
  /** PCR 16 after each extend, by the guest's counter (1, 2, ...). */
  readonly ext: Map<number, string>;
  readonly errors: string[];
}

/** Splits the serial log into boots (each starts with `@@ boot`). */
export function parseBoots(text: string): Boot[] {
  const boots: Array<{
    pcrs: string[];
    counts: [number, number] | undefined;
    ext: Map<number, string>;
    errors: string[];
  }> = [];
  // The last line may still be being written: only whole lines count.
  const lines = text.replace(/\r/g, '').split('\n').slice(0, -1);
  for (const raw of lines) {
    const at = raw.indexOf('@@ ');
    if (at < 0) continue;
    const [kind, a, b] = raw.slice(at + 3).split(' ');
    if (kind === 'boot') {
      boots.push({ pcrs: [], counts: undefined, ext: new Map(), errors: [] });
      continue;
    }
    const cur = boots.at(-1);
    if (cur === undefined) continue;
    if (kind === 'pcr' && b !== undefined) cur.pcrs[Number(a)] = b;
    // TPM2_ReadClock response: header (10), time (8), clock (8), resetCount (4), ...
    else if (kind === 'clock' && a !== undefined)
      cur.counts = [Number.parseInt(a.slice(52, 60), 16), Number.parseInt(a.slice(60, 68), 16)];
    else if (kind === 'ext' && b !== undefined) cur.ext.set(Number(a), b);
    else if (kind === 'error' || kind === 'extend-rsp') cur.errors.push(raw.slice(at + 3));
  }
  return boots;
}

/** True when `b`'s (resetCount, restartCount) is later than `a`'s. */
export function countsAdvanced(a: Boot, b: Boot): boolean {
  const [r1, s1] = a.counts ?? [0, 0];
  const [r2, s2] = b.counts ?? [0, 0];
  return r2 > r1 || (r2 === r1 && s2 > s1);
}

/** sha256("foo\n"), the digest the guest extends into PCR 16. */
const FOO = Buffer.from('b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c', 'hex');

/** PCR 16 after `n` extends from a TPM reset (all zeros). */
export function pcr16After(n: number): string {
  let v: Buffer = Buffer.alloc(32);
  for (let i = 0; i < n; i++) v = createHash('sha256').update(v).update(FOO).digest();
  return v.toString('hex').toUpperCase();
}

export function readSerial(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return '';
  }
}
