import { closeSync, openSync, unlinkSync } from 'node:fs';
import { serveCtrl } from '../../device/ctrl-session.js';
import { serveData } from '../../device/data-session.js';
import type { Device } from '../../device/device.js';
import { type WireMessage, formatWireDump, wireChannel } from '../../device/trace.js';
import {
  TPM_BAD_PARAMETER,
  TPM_FAIL,
  TPM_IOERROR,
  TPM_SUCCESS,
} from '../../protocol/tpm/results.js';
import type { Conn, ConnServer } from '../../transport/conn.js';
import { vtpmProxyConn } from '../../transport/vtpm-conn.js';
import { CliError } from '../common/subopts.js';
import type { ChannelConfig, Config } from './args.js';
import {
  checkSunPath,
  connectedFd,
  listenChecked,
  listenError,
  listenOptions,
  loadCharConn,
} from './channels.js';
import { attachLog, openDevice } from './device-setup.js';
import type { Logger } from './log.js';
import { PcapSink } from './pcap.js';
import { writePid } from './pidfile.js';
import { startupStep } from './startup-trace.js';
import { openStorage, printStates } from './storage-setup.js';
import { infoText } from './tpm-info.js';
import { openVtpmProxy } from './vtpm.js';

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** The koffi-based Unix transport (fd passing), loaded only for a UnixIO control channel. */
type UnixConn = typeof import('../../transport/unix-conn.js');

/** Loads the fd-passing Unix transport (also before a --chroot: cli/sandbox-setup.ts). */
export const loadUnixConn = (): Promise<UnixConn> => import('../../transport/unix-conn.js');

/** Capabilities of swtpm 0.8+'s socket and chardev front ends. */
const CAPS_TPM2 = 0x1ffff;
const CAPS_TPM12 = 0x17fff;

export interface RunHooks {
  /** Handle SIGTERM/SIGINT/SIGHUP (the CLI does; an embedding process does not). */
  readonly signals?: boolean;
  /**
   * Runs after the TPM is started (if asked to start) and before `onReady`: the CLI
   * installs its seccomp filter here. A throw ends the server with that error.
   */
  readonly beforeReady?: () => Promise<void>;
  /** Called once the channels listen and the TPM is started (if asked to start). */
  readonly onReady?: (stop: () => Promise<void>) => void;
}

/**
 * `tswtpm socket|chardev`: builds storage, device, data and control channels, starts
 * the TPM when asked, and runs until SHUTDOWN, a signal, or a lost channel with
 * terminate semantics. Resolves when the process may exit.
 */
export async function runServer(cfg: Config, log: Logger, hooks: RunHooks = {}): Promise<void> {
  const version = cfg.tpm2 ? '2.0' : '1.2';
  // --print-profiles, the --profile checks and --print-info without a state location
  // come before any state is opened (swtpm: after --print-states).
  if (cfg.printStates) {
    const storage = openStorage(cfg, version);
    process.stdout.write(printStates(storage.backend, version));
    storage.backend.close();
    return;
  }
  const caps = version === '2.0' ? CAPS_TPM2 : CAPS_TPM12;
  const device = openDevice(cfg, caps, () => startupStep('engine'));
  if (device === undefined) return;
  startupStep('state');
  let pcap: PcapSink | undefined;

  const servers: ConnServer[] = [];
  let pidFile: string | undefined;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  let exiting = false;
  /** Data channels not behind a listener (--fd, chardev, CMD_SET_DATAFD) while open. */
  const conns = new Set<Conn>();
  /** The --vtpm-proxy fd until it is served. */
  let proxyFd: number | undefined;
  const exit = async () => {
    if (exiting) return;
    exiting = true;
    if (signals) for (const sig of SIGNALS) process.off(sig, onSignal);
    if (log.level >= 2) wireChannel.unsubscribe(dump);
    for (const s of servers) s.close();
    // swtpm's main loop ends with its data fd (QEMU's socketpair is still open then).
    for (const c of conns) c.close();
    // Closing it unregisters /dev/tpmN (no read() can be pending on it yet).
    if (proxyFd !== undefined) closeSync(proxyFd);
    proxyFd = undefined;
    try {
      await device.close();
    } catch (err) {
      log.error(`Error while stopping the TPM: ${(err as Error).message}`);
    }
    // After the automatic TPM2_Shutdown, which the capture records.
    pcap?.close();
    if (pidFile !== undefined) {
      try {
        unlinkSync(pidFile);
      } catch {}
    }
    done();
  };
  // Signals are handled from the start, so a SIGTERM while the channels open still
  // shuts down cleanly.
  const signals = hooks.signals ?? true;
  const onSignal = () => void exit();
  if (signals) for (const sig of SIGNALS) process.on(sig, onSignal);
  device.onShutdown = () => void exit();
  attachLog(device, log);
  // swtpm dumps control and data traffic from log level 2 on.
  // Commands the emulator sends itself are not dumped (swtpm's pcap records them).
  const dump = (m: unknown) => {
    const w = m as WireMessage;
    if (w.source === device && w.internal !== true) log.raw(2, formatWireDump(w));
  };
  if (log.level >= 2) wireChannel.subscribe(dump);

  const dataOpts = {
    disconnect: cfg.server?.disconnect ?? false,
    allowPrefix: true,
    onEnd: () => {
      if (cfg.terminate) void exit();
    },
  };
  const serveDataConn = (conn: Conn) => {
    conns.add(conn);
    serveData(device, conn, {
      ...dataOpts,
      onEnd: () => {
        conns.delete(conn);
        dataOpts.onEnd();
      },
    });
  };
  // Fds (CMD_SET_DATAFD) arrive only over a UnixIO control channel: with a TCP one the
  // fd-passing transport is never loaded.
  const unix: UnixConn | undefined = cfg.ctrl?.type === 'unixio' ? await loadUnixConn() : undefined;
  /** A data channel that is an fd given at start (served from `ready` on, as listeners). */
  let given: (() => Conn) | undefined;

  try {
    // The data channel: a listening socket, a given fd, a character device, or none
    // (then QEMU passes it with CMD_SET_DATAFD).
    const data = cfg.server;
    if (cfg.iface === 'chardev' && cfg.vtpmProxy) {
      // swtpm creates the proxy before anything else is opened, --print-info included,
      // but reads it only once the TPM has started (below).
      proxyFd = openVtpmProxy(cfg);
    } else if (cfg.iface === 'chardev' && cfg.printInfo !== 0 && cfg.chardev === undefined) {
      // swtpm opens /dev/zero for --print-info; nothing is served.
    } else if (cfg.iface === 'chardev') {
      if (cfg.chardev === undefined && data?.fd === undefined) {
        throw new CliError('Missing character device or file descriptor');
      }
      const fd = data?.fd ?? cfg.chardevFd ?? openSync(cfg.chardev!, 'r+');
      const { charDeviceConn } = await loadCharConn();
      given = () => charDeviceConn(fd);
    } else if (data?.fd !== undefined && data.type === 'tcp') {
      given = await connectedFd(data.fd);
    } else if (data !== undefined) {
      const s = await listenChecked(data, listenOptions(data, 'server'));
      s.onConn = serveDataConn;
      servers.push(s);
    }
    let dataFdActive = false;
    device.attachDataFd = (fd) => {
      if (data !== undefined || cfg.iface === 'chardev' || dataFdActive) {
        if (fd !== undefined) closeSync(fd);
        return TPM_IOERROR;
      }
      if (fd === undefined || unix === undefined) return TPM_BAD_PARAMETER;
      let conn: Conn;
      try {
        conn = unix.fdConn(fd, { bufferSize: 4105 });
      } catch (err) {
        // Not a socket (a pipe, a file): refused and closed; a later good fd still works.
        closeSync(fd);
        log.error(`CMD_SET_DATAFD: unusable fd: ${(err as Error).message}`);
        return TPM_FAIL;
      }
      dataFdActive = true;
      conns.add(conn);
      serveData(device, conn, {
        ...dataOpts,
        disconnect: false,
        onEnd: () => {
          dataFdActive = false;
          conns.delete(conn);
          if (cfg.terminate) void exit();
        },
      });
      return TPM_SUCCESS;
    };
    if (cfg.ctrl !== undefined) servers.push(await controlServer(cfg.ctrl, device, exit, unix));
    // A pid file that cannot be written ends the process (it must not keep listening).
    if (cfg.pid !== undefined) pidFile = writePid(cfg.pid);
    // swtpm writes the capture's header before the TPM starts.
    if (cfg.pcap !== undefined) pcap = PcapSink.open(cfg.pcap, version === '2.0', device);
  } catch (err) {
    await exit();
    throw err;
  }

  startupStep('listening');
  if (cfg.printInfo !== 0) {
    // With a state location swtpm starts the TPM (lock, profile, state creation) so
    // that GetInfo reports on it, prints, then terminates libtpms without Shutdown.
    const rc = device.startTpm(0);
    if (rc === TPM_SUCCESS) process.stdout.write(infoText(device.engine, cfg.printInfo));
    device.engine.stop();
    device.running = false;
    await exit();
    if (rc !== TPM_SUCCESS) throw new CliError('Error: Could not initialize libtpms.');
    return;
  }

  if (cfg.flags.notNeedInit) {
    const rc = device.startTpm(0);
    if (rc !== TPM_SUCCESS) {
      await exit();
      throw new CliError('Error: Could not initialize libtpms.');
    }
    startupStep('tpm-started');
    if (!device.sendStartup()) {
      await exit();
      throw new CliError('Error: Could not send Startup to the TPM.');
    }
    startupStep('startup-sent');
  }

  if (hooks.beforeReady !== undefined) {
    try {
      await hooks.beforeReady();
    } catch (err) {
      await exit();
      throw err;
    }
    startupStep('seccomp');
  }

  if (proxyFd !== undefined) {
    // The kernel queues its start-up commands (SET_LOCALITY, SelfTest, GetCapability,
    // GetRandom) as soon as the proxy exists and gives up registering /dev/tpmN on an
    // error: they must reach a started TPM, as in swtpm, whose main loop reads the fd
    // only after the TPM and its Startup.
    const fd = proxyFd;
    proxyFd = undefined;
    given = () =>
      vtpmProxyConn(fd, (err) =>
        log.error(`Could not write the response to the vTPM proxy: ${err.code ?? err.message}`),
      );
  }
  // Like swtpm's main loop, which polls its fds only once the TPM runs and the seccomp
  // filter is in: no client is accepted and no fd read before this point; clients that
  // connected earlier waited in the kernel's backlog.
  if (given !== undefined) serveDataConn(given());
  for (const s of servers) s.start();

  startupStep('ready');
  hooks.onReady?.(async () => {
    await exit();
    await finished;
  });
  await finished;
}

async function controlServer(
  c: ChannelConfig,
  device: Device,
  exit: () => Promise<void>,
  unix: UnixConn | undefined,
): Promise<ConnServer> {
  const onEnd = () => {
    if (c.terminate) void exit();
  };
  let s: ConnServer;
  if (c.type === 'unixio' && unix !== undefined) {
    if (c.path === undefined && c.fd === undefined && c.clientfd === undefined) {
      throw new CliError('Missing path and fd options for UnixIO control channel');
    }
    const o: Record<string, unknown> = { mode: c.mode ?? 0o770 };
    if (c.path !== undefined) o.path = checkSunPath(c.path);
    if (c.fd !== undefined) o.fd = c.fd;
    if (c.clientfd !== undefined) o.clientFd = c.clientfd;
    if (c.uid !== undefined) o.uid = c.uid;
    if (c.gid !== undefined) o.gid = c.gid;
    try {
      s = unix.unixConnServer(o as Parameters<UnixConn['unixConnServer']>[0]);
    } catch (err) {
      throw listenError(c, err);
    }
    // With clientfd there is no listener: losing that client ends the channel for good.
  } else {
    if (c.clientfd !== undefined) throw new CliError('clientfd is only valid for UnixIO channels');
    s = await listenChecked(c, listenOptions(c, 'ctrl'));
  }
  s.onConn = (conn) => serveCtrl(device, conn, { onEnd });
  return s;
}
