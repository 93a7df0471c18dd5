// A Debian kernel + busybox initramfs guest (clients.md recipe c3) under QEMU 7.2 (TCG)
// with tswtpm behind tpm-tis and tpm-crb: Linux binds its driver to the TPM, creates
// /sys/class/tpm/tpm0, and prints the ACPI description and every PCR from sysfs to the
// console. The PCRs (SeaBIOS's measurements plus Linux's own extend of PCR 10) must
// equal those of the same guest with Debian's swtpm.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Procs, buildInitramfs, linuxGuest, qemuSkip } from '../helpers/qemu.js';

const SEPARATOR_ONLY = 'E21B703EE69C77476BCCB43EC0336A9A1B2914B378944F7B00A10214CA8FEA93';
const PCR4 = '1EB9AA21337CC1FA31CE5F56900D7BF59B9DDA366823095AED06544CAA2557CA';
const ZERO = '0'.repeat(64);

const procs = new Procs();
const root = mkdtempSync(join(tmpdir(), 'tswtpm-qemu-linux-'));
const initrd = join(root, 'initramfs-tpm.cpio.gz');
after(async () => {
  await procs.killAll();
  rmSync(root, { recursive: true, force: true });
});

const pcrLines = (r: Map<string, string>) =>
  [...r].filter(([k]) => k.startsWith('pcr-')).map(([k, v]) => `${k}: ${v}`);

describe('QEMU + Linux guest + tswtpm', { skip: qemuSkip({ swtpm: true, kernel: true }) }, () => {
  before(() => buildInitramfs(initrd));

  for (const device of ['tpm-tis', 'tpm-crb'] as const) {
    it(`${device}: the guest sees /sys/class/tpm/tpm0 with swtpm's PCR values`, async (t) => {
      try {
        const ours = await linuxGuest(procs, 'tswtpm', device, join(root, `${device}-t`), initrd);
        const ref = await linuxGuest(procs, 'swtpm', device, join(root, `${device}-s`), initrd);
        t.diagnostic(`tswtpm guest ${ours.bootMs} ms, swtpm guest ${ref.bootMs} ms`);
        const r = ours.report;
        const get = (k: string) => r.get(k) ?? `<${k} missing>\n${ours.text}`;
        assert.equal(get('class'), 'tpm0');
        assert.equal(get('devices'), '/dev/tpm0 /dev/tpmrm0');
        assert.equal(get('tpm_version_major'), '2');
        assert.equal(get('description'), 'TPM 2.0 Device');
        assert.equal(get('hid'), 'MSFT0101');
        assert.equal(get('driver'), device === 'tpm-tis' ? 'tpm_tis' : 'tpm_crb');
        if (device === 'tpm-tis') {
          assert.match(ours.text, /tpm_tis MSFT0101:00: 2\.0 TPM \(device-id 0x1, rev-id 1\)/);
        }
        for (const i of [0, 3, 5, 6, 7]) assert.equal(get(`pcr-sha256/${i}`), SEPARATOR_ONLY);
        assert.equal(get('pcr-sha256/4'), PCR4);
        assert.notEqual(get('pcr-sha256/10'), ZERO, 'Linux extended PCR 10 (IMA)');
        assert.equal(pcrLines(r).length, 4 * 24, 'four banks of 24 PCRs');
        assert.deepEqual(pcrLines(r), pcrLines(ref.report));
      } finally {
        await procs.killAll();
      }
    });
  }
});
