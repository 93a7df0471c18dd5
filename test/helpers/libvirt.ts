// A private libvirtd + virtlogd for test/interop/libvirt.test.ts (spec/libvirt.md), run
// by hand without systemd. Both run inside `unshare -m --propagation private`, where this
// run's own directories are bind-mounted over /etc/libvirt, /run/libvirt,
// /var/lib/libvirt, /var/log/libvirt, /var/log/swtpm and /var/cache/libvirt (libvirt as
// root has these paths compiled in), and over /etc/passwd and /etc/group (libvirt needs a
// `libvirt-qemu` user even when qemu.conf says root). Nothing is cached between two hosts.
// C swtpm's programs and config files can be covered by a script that records each call
// in a marker file and fails, so a run can prove that none of them was reached.
import { execFile, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Why no libvirtd can run here, or false. */
export function libvirtSkip(): string | false {
  const has = (p: string) => existsSync(p);
  if (!has('/usr/sbin/libvirtd') || !has('/usr/sbin/virtlogd') || !has('/usr/bin/virsh'))
    return 'libvirtd/virtlogd/virsh not installed (scripts/install-deps.sh installs libvirt-daemon-driver-qemu libvirt-clients libvirt-daemon)';
  if (process.getuid?.() !== 0) return 'libvirtd for qemu:///system needs root';
  if (spawnSync('unshare', ['-m', '--propagation', 'private', 'true']).status !== 0)
    return 'cannot create a private mount namespace (unshare -m needs CAP_SYS_ADMIN)';
  return false;
}

/** The system paths libvirt uses as root, each replaced by a directory of the run. */
const PRIVATE_DIRS = {
  etc: '/etc/libvirt',
  run: '/run/libvirt',
  lib: '/var/lib/libvirt',
  log: '/var/log/libvirt',
  swlog: '/var/log/swtpm',
  cache: '/var/cache/libvirt',
  // swtpm_localca's default CA (root's swtpm-localca.conf): never the host's own.
  localca: '/var/lib/swtpm-localca',
} as const;

/** C swtpm's files that a tswtpm-only host must never touch (spec/provisioning.md). */
export const C_SWTPM_PROGRAMS = [
  '/usr/bin/swtpm',
  '/usr/bin/swtpm_setup',
  '/usr/bin/swtpm_ioctl',
  '/usr/bin/swtpm_localca',
  '/usr/bin/swtpm_cert',
  '/usr/bin/swtpm_bios',
] as const;
export const C_SWTPM_CONFIGS = [
  '/etc/swtpm_setup.conf',
  '/etc/swtpm-localca.conf',
  '/etc/swtpm-localca.options',
] as const;

const QEMU_CONF = `user = "root"
group = "root"
swtpm_user = "root"
swtpm_group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
dynamic_ownership = 0
remember_owner = 0
`;

export interface HostOptions {
  /** Prepended to libvirtd's PATH (libvirt looks up swtpm, swtpm_setup, swtpm_ioctl there). */
  readonly pathFirst?: string;
  /** Files covered by the failing marker script (programs and config files). */
  readonly mask?: readonly string[];
  /**
   * /etc files that do not exist for libvirtd (a host that never had C swtpm): /etc is a
   * private copy without them.
   */
  readonly hide?: readonly string[];
  /** Extra environment of libvirtd (inherited by swtpm_setup and swtpm). */
  readonly env?: Readonly<Record<string, string>>;
}

/** One private libvirtd; `stop()` ends it and virtlogd by pid. */
export class LibvirtHost {
  readonly base: string;
  readonly marker: string;
  readonly uri: string;

  private constructor(base: string) {
    this.base = base;
    this.marker = join(base, 'c-swtpm-calls');
    this.uri = `qemu:///system?socket=${join(base, 'sock', 'libvirt-sock')}`;
  }

  /** Private path of a system path (e.g. /var/lib/libvirt/swtpm → BASE/lib/swtpm). */
  host(path: string): string {
    for (const [k, sys] of Object.entries(PRIVATE_DIRS)) {
      if (path === sys || path.startsWith(`${sys}/`))
        return join(this.base, k, path.slice(sys.length));
    }
    throw new Error(`${path} is not private to the libvirt host`);
  }

  static async start(base: string, opts: HostOptions = {}): Promise<LibvirtHost> {
    const h = new LibvirtHost(base);
    for (const k of [...Object.keys(PRIVATE_DIRS), 'sock'])
      mkdirSync(join(base, k), { recursive: true });
    // Bind-mount targets must exist; on a host without libvirt-daemon-system they do not.
    for (const d of Object.values(PRIVATE_DIRS)) mkdirSync(d, { recursive: true });
    writeFileSync(join(base, 'etc', 'qemu.conf'), QEMU_CONF);
    writeFileSync(join(base, 'etc', 'libvirtd.conf'), `unix_sock_dir = "${join(base, 'sock')}"\n`);
    const passwd = readFileSync('/etc/passwd', 'utf8');
    const group = readFileSync('/etc/group', 'utf8');
    writeFileSync(
      join(base, 'passwd'),
      /^libvirt-qemu:/m.test(passwd)
        ? passwd
        : `${passwd}libvirt-qemu:x:64055:64055:libvirt:/nonexistent:/usr/sbin/nologin\n`,
    );
    writeFileSync(
      join(base, 'group'),
      /^libvirt-qemu:/m.test(group) ? group : `${group}libvirt-qemu:x:64055:\n`,
    );
    writeFileSync(h.marker, '');
    const fail = join(base, 'c-swtpm-masked');
    writeFileSync(
      fail,
      `#!/bin/sh\necho "$0 $*" >>'${h.marker}'\necho "C swtpm's $0 is masked in this test" >&2\nexit 1\n`,
    );
    chmodSync(fail, 0o755);
    const binds: Array<[string, string]> = [];
    if ((opts.hide ?? []).length > 0) {
      const etc = join(base, 'etc-copy');
      cpSync('/etc', etc, { recursive: true, verbatimSymlinks: true });
      for (const f of opts.hide ?? []) rmSync(join(etc, f.slice('/etc/'.length)), { force: true });
      binds.push([etc, '/etc']);
    }
    binds.push(
      ...Object.entries(PRIVATE_DIRS).map(([k, sys]): [string, string] => [join(base, k), sys]),
      [join(base, 'passwd'), '/etc/passwd'],
      [join(base, 'group'), '/etc/group'],
    );
    // What is not installed cannot be reached anyway (and cannot be a mount point).
    for (const m of (opts.mask ?? []).filter((f) => existsSync(f))) {
      // A config file read instead of ours names the failing script as its tool.
      const file = m.startsWith('/etc/') ? join(base, `masked-${m.slice(5)}`) : fail;
      if (m.startsWith('/etc/'))
        writeFileSync(
          file,
          `# C swtpm's ${m} is masked in this test\ncreate_certs_tool = ${fail}\nstatedir = ${fail}\nsigningkey = ${fail}\n--platform-manufacturer ${fail}\n`,
        );
      binds.push([file, m]);
    }
    const path = [opts.pathFirst, '/usr/sbin:/usr/bin:/sbin:/bin'].filter(Boolean).join(':');
    const env = Object.entries({ PATH: path, ...opts.env }).map(([k, v]) => `${k}=${v}`);
    const script = [
      'set -e',
      ...binds.map(([src, dst]) => `mount --bind '${src}' '${dst}'`),
      `env -i ${env.map((e) => `'${e}'`).join(' ')} virtlogd -d -p '${join(base, 'virtlogd.pid')}'`,
      `env -i ${env.map((e) => `'${e}'`).join(' ')} libvirtd -d -p '${join(base, 'libvirtd.pid')}' -f '${join(base, 'etc', 'libvirtd.conf')}'`,
    ].join('\n');
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (r.status !== 0) throw new Error(`starting libvirtd failed (${r.status}): ${r.stderr}`);
    // libvirtd answers once its socket listens; the first connection waits for the QEMU
    // capability probe.
    for (let i = 0; ; i++) {
      const v = await h.virshTry('version');
      if (v.status === 0) break;
      if (i > 150) throw new Error(`libvirtd did not answer: ${v.out}`);
      await sleep(200);
    }
    return h;
  }

  /** Runs virsh against this libvirtd; resolves with status and combined output. */
  virshTry(...args: string[]): Promise<{ status: number | null; out: string }> {
    return new Promise((resolve) => {
      execFile('virsh', ['-q', '-c', this.uri, ...args], { timeout: 120_000 }, (err, so, se) => {
        const status = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ status, out: `${so}${se}` });
      });
    });
  }

  /** Runs virsh; throws with its output unless it exits 0. */
  async virsh(...args: string[]): Promise<string> {
    const r = await this.virshTry(...args);
    if (r.status !== 0) throw new Error(`virsh ${args.join(' ')} -> ${r.status}: ${r.out}`);
    return r.out;
  }

  /**
   * Runs each masked program inside libvirtd's mount namespace and reads each masked
   * config file there: returns what failed to show the mask (empty when all are masked),
   * then empties the marker file again.
   */
  probeMasks(masked: readonly string[]): string[] {
    const pid = readFileSync(join(this.base, 'libvirtd.pid'), 'utf8').trim();
    const bad: string[] = [];
    for (const m of masked.filter((f) => existsSync(f))) {
      const probe = m.startsWith('/etc/') ? ['cat', m] : [m, '--version'];
      const r = spawnSync('nsenter', ['-m', '-t', pid, ...probe], { encoding: 'utf8' });
      const shown = m.startsWith('/etc/')
        ? r.stdout.includes('is masked in this test')
        : r.status === 1 && this.cSwtpmCalls().includes(`${m} --version`);
      if (!shown) bad.push(`${m}: ${r.status} ${r.stdout}${r.stderr}`);
    }
    writeFileSync(this.marker, '');
    return bad;
  }

  /** What the failing script recorded: each masked C swtpm program or config use. */
  cSwtpmCalls(): string {
    return readFileSync(this.marker, 'utf8');
  }

  /**
   * Destroys what still runs, then SIGTERMs libvirtd and virtlogd by pid; QEMU and swtpm
   * processes left by a failed step are SIGKILLed by the pids libvirt wrote (driver.pid
   * there is libvirtd's own).
   */
  async stop(): Promise<void> {
    const list = await this.virshTry('list', '--name');
    for (const name of list.out.split('\n').filter((l) => /^[\w-]+$/.test(l)))
      await this.virshTry('destroy', name);
    for (const d of ['qemu', 'qemu/swtpm']) {
      const dir = join(this.base, 'run', d);
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir).filter((n) => n.endsWith('.pid') && n !== 'driver.pid'))
        killPidFile(join(dir, f), 'SIGKILL');
    }
    for (const p of ['libvirtd.pid', 'virtlogd.pid']) await stopPidFile(join(this.base, p));
  }
}

function killPidFile(file: string, sig: NodeJS.Signals): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (!(pid > 1)) return undefined;
    process.kill(pid, sig);
    return pid;
  } catch {
    return undefined;
  }
}

async function stopPidFile(file: string): Promise<void> {
  const pid = killPidFile(file, 'SIGTERM');
  if (pid === undefined) return;
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(100);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
}
