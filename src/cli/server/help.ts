import type { Iface } from './args.js';

const COMMON = `--tpm2
                 : emulate a TPM 2.0 (default: TPM 1.2)
--tpmstate dir=<dir>[,mode=0...][,lock][,backup][,fsync]|backend-uri=dir://<dir>|file://<file>
                 : where the TPM state lives; TPM_PATH in the environment
                   stands in for dir=; mode sets the state files' mode
                   bits (default 0640); lock=false disables the lock file
--flags [not-need-init][,startup-clear|startup-state|startup-deactivated|startup-none][,disable-auto-shutdown]
                 : not-need-init: start the TPM without CMD_INIT;
                   startup-...: also send TPM_Startup of that type;
                   disable-auto-shutdown: no TPM2_Shutdown before a reset
--locality [reject-locality-4][,allow-set-locality]
                 : reject locality 4; accept the vendor SetLocality command
--key file=<path>|fd=<fd>|pwdfile=<path>|pwdfd=<fd>[,format=hex|binary][,mode=aes-cbc|aes-128-cbc|aes-256-cbc][,kdf=pbkdf2|sha512][,remove]
                 : encrypt the state files with this AES key or passphrase
--migration-key (same parameters as --key)
                 : encrypt state blobs read through the control channel
--migration [incoming][,release-lock-outgoing]
                 : defer the storage lock for an incoming migration
--pid file=<path>|fd=<fd>
                 : write the process id there; removed at exit
--log file=<path>|fd=<fd>[,level=n][,prefix=<prefix>][,truncate]
                 : where to log ('-' disables logging); level 2 and more
                   dump all TPM and control traffic (random numbers,
                   unsealed data, state blobs); 5 and more add libtpms'
                   own TPM 1.2 trace, 7 and more with fragments of keys
--seccomp action=none|kill
                 : the action of the seccomp profile when a denied syscall
                   is made (default kill; log only logs it; none: no profile)
-R|--chroot <dir>: chroot to <dir> first (root only); the log, pid file,
                   sockets and state paths are then inside it
--print-capabilities
                 : print the supported features as JSON and exit
--print-states   : print the stored TPM states as JSON and exit
--print-info <flags>
                 : print libtpms' TPMLIB_GetInfo(flags) JSON and exit
--profile name=<name>|profile=<json>|file=<path>|fd=<fd>
                 : set a profile on a new TPM 2 (needs libtpms 0.10+)
--print-profiles : print the profiles libtpms offers (needs libtpms 0.10+)
--pcap file=<path>|fd=<fd>[,truncate][,mode=0...][,checksums]
                 : write TPM commands and responses into a pcapng file
                   (default mode 0640); checksums computes IP/TCP checksums
-h|--help        : print this help and exit
-v|--version     : print the version and exit
`;

const CHANNELS = `--ctrl type=unixio|tcp[,path=<path>][,port=<port>][,bindaddr=<addr>][,fd=<fd>|clientfd=<fd>][,mode=0...][,uid=<uid>][,gid=<gid>][,terminate]
                 : the control channel (CMD_* commands); TCP binds to
                   127.0.0.1 unless bindaddr is given; terminate exits
                   when the control client goes away
`;

const SOCKET = `-p|--port <port> : TPM commands on this TCP port (closes after each response)
-f|--fd <fd>     : TPM commands on this already-open socket
-t|--terminate   : exit when the data client goes away
--server type=tcp[,port=<port>][,bindaddr=<addr>][,fd=<fd>][,disconnect]
--server type=unixio,path=<path>|fd=<fd>[,mode=0...][,uid=<uid>][,gid=<gid>][,disconnect]
                 : where TPM commands arrive; without --server the data
                   channel comes from CMD_SET_DATAFD
${CHANNELS}`;

const CHARDEV = `-c|--chardev <path>
                 : TPM commands on this character device (or pty)
-f|--fd <fd>     : TPM commands on this already-open character device
--vtpm-proxy     : create a Linux vTPM proxy device (/dev/tpmN, needs root and
                   the tpm_vtpm_proxy module) and serve the kernel's TPM
                   commands; implies not-need-init, startup-clear (unless
                   --flags names another startup type) and allow-set-locality
${CHANNELS}`;

const CUSE = `-n|--name <name> : create the character device /dev/<name>
-M|--maj <major> / -m|--min <minor>
                 : device numbers (default: chosen by the kernel)
`;

const HOST = `--dir <dir>      : the base directory (required): vTPM NAME lives in <dir>/NAME
                   (state/, ctrl.sock, tpm.sock, tswtpm.log, options.json);
                   <dir>/host.sock takes one request per line:
                   add NAME [tpm1.2] [qemu] [log-level=N] | remove NAME | list
--log file=<path>|fd=<fd>[,level=n][,prefix=<prefix>][,truncate]
                 : the host's own log: vTPMs started and stopped, and every
                   vTPM's errors prefixed with its name (default: errors on
                   stderr)
--vtpm-log level=<n>
                 : level of each vTPM's <dir>/NAME/tswtpm.log (swtpm's --log
                   levels; default 1: errors only; 0: no file); an add
                   request's log-level=N overrides it for that vTPM
--seccomp action=none|kill
                 : as for socket; the profile is installed before any vTPM
                   or host.sock serves (default kill)
-h|--help        : print this help and exit
`;

/** `tswtpm host --help`. */
export function hostUsage(): string {
  return `Usage: tswtpm host --dir <dir> [options]\n\nMany vTPMs in one process, each with its own state, sockets and log.\n\nThe following options are supported:\n\n${HOST}`;
}

/** Help text; `iface` undefined gives the top-level usage. */
export function usage(iface: Iface | undefined): string {
  if (iface === undefined) {
    return [
      'TPM emulator with choice of interface.',
      '',
      'Usage: tswtpm socket|chardev|cuse [options]',
      '       tswtpm host --dir <dir> [options]',
      '       tswtpm -h|--help',
      '       tswtpm -v|--version',
      '',
      'Use the --help option to see the help screen for each interface type.',
      '',
    ].join('\n');
  }
  const specific = iface === 'socket' ? SOCKET : iface === 'chardev' ? CHARDEV : CUSE;
  return `Usage: tswtpm ${iface} [options]\n\nThe following options are supported:\n\n${specific}${COMMON}`;
}
