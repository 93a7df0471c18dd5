/**
 * The checks swtpm_setup makes between option parsing and the first TPM command
 * (provisioning.md §1.1 steps 9-13), each with its message.
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { CliError } from '../common/subopts.js';
import { rsaKeySizes } from './capabilities.js';
import type { SetupArgs } from './options.js';

/** getpwuid(getuid())'s name, `<unknown>` if absent. */
export function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return '<unknown>';
  }
}

/** getgrgid(getgid())'s name, `<unknown>` if absent. */
export function groupName(): string {
  const gid = process.getgid?.();
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[2] !== undefined && Number(f[2]) === gid) return f[0]!;
    }
  } catch {}
  return '<unknown>';
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** strftime("%a %d %h %Y %I:%M:%S %p %Z") in local time. */
export function setupDate(d = new Date()): string {
  const p2 = (n: number) => String(n).padStart(2, '0');
  const h = d.getHours();
  const zone =
    new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' })
      .formatToParts(d)
      .find((x) => x.type === 'timeZoneName')?.value ?? '';
  return `${DAYS[d.getDay()]} ${p2(d.getDate())} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ${p2(h % 12 === 0 ? 12 : h % 12)}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${h < 12 ? 'AM' : 'PM'} ${zone}`;
}

/** `--logfile F`: must be openable for appending (`Cannot write to logfile F.`). */
export function checkLogfile(file: string): void {
  try {
    closeSync(openSync(file, 'a'));
  } catch {
    throw new CliError(`Cannot write to logfile ${file}.`);
  }
}

/** The TPM-family checks of §1.2's "TPM" column (0.10.2 wording). */
export function checkFamily(a: SetupArgs): void {
  const tpm2 = a.flags.has('tpm2');
  if (tpm2) {
    if (a.flags.has('take-ownership'))
      throw new CliError('Taking ownership is not supported for TPM 2.');
    return;
  }
  const need = (what: string) => {
    throw new CliError(`${what} requires --tpm2.`);
  };
  if (a.flags.has('create-spk')) need('--create-spk');
  if (a.flags.has('ecc')) need('--ecc');
  if (a.flags.has('reconfigure')) need('--reconfigure');
  if (a.pcrBanks !== undefined) need('--pcr-banks');
  if (a.flags.has('allow-signing')) need('--allow-signing');
  if (a.flags.has('decryption')) need('--decryption');
  const profile = ['profile', 'profile-name', 'profile-file', 'profile-file-fd'] as const;
  if (profile.some((p) => a.values.has(p)))
    throw new CliError("There's no --profile support for TPM 1.2");
}

/**
 * `--rsa-keysize` (else config `rsa_keysize`, else 2048): `max` = the emulator's largest;
 * only 2048 and 3072, and 3072 only if the emulator lists it. The size error goes to
 * stdout, as in swtpm_setup.
 */
export function chooseRsaKeySize(
  value: string | undefined,
  tpm2: boolean,
  tpm2Caps: string,
  info: (line: string) => void,
): 2048 | 3072 {
  let v = value === undefined || value.trim() === '' ? '2048' : value.trim();
  const sizes = tpm2 ? rsaKeySizes(tpm2Caps) : [];
  if (v === 'max') v = String(sizes.at(-1) ?? 2048);
  if (v !== '2048' && v !== '3072') {
    info(`Unsupported RSA key size ${v}.`);
    throw new CliError('');
  }
  if (v === '3072' && !sizes.includes(3072)) {
    throw new CliError('3072 bit RSA keys are not supported by libtpms.');
  }
  return v === '3072' ? 3072 : 2048;
}
