import { userIds } from './ids.js';
import { CliError } from './subopts.js';

/** process.initgroups() (POSIX builds of Node) is missing from @types/node. */
type WithInitgroups = { initgroups?: (user: string, extraGroup: number) => void };

/**
 * `-r/--runas USER`, as swtpm's change_process_owner(): for a user name,
 * initgroups(name, primary gid) (the user's supplementary groups from /etc/group),
 * setgid(primary gid), setuid(uid). A number is a uid whose gid is the same number
 * (swtpm 0.7.1 and master); swtpm then keeps the caller's supplementary groups, we
 * reduce them to that gid (docs/compat.md).
 *
 * socket/chardev call it right after the options are parsed (before the log, the
 * sockets, the pid file and the state are opened), CUSE once the device exists.
 */
export function runAs(user: string): void {
  const { uid, gid, numeric } = resolveUser(user);
  try {
    if (numeric) process.setgroups?.([gid]);
    else (process as WithInitgroups).initgroups?.(user, gid);
  } catch {
    throw new CliError(
      numeric ? `Error: setgroups(${gid}) failed.` : `Error: initgroups(${user}, ${gid}) failed.`,
    );
  }
  try {
    process.setgid?.(gid);
  } catch {
    throw new CliError(`Error: setgid(${gid}) failed.`);
  }
  try {
    process.setuid?.(uid);
  } catch {
    throw new CliError(`Error: setuid(${uid}) failed.`);
  }
}

/** The uid and gid `--runas USER` switches to (swtpm's messages for a bad USER). */
export function resolveUser(user: string): { uid: number; gid: number; numeric: boolean } {
  if (/^\d+$/.test(user)) {
    const uid = Number(user);
    if (uid > 0xffffffff) throw new CliError(`Error: uid ${user} outside valid range.`);
    return { uid, gid: uid, numeric: true };
  }
  const ids = userIds(user);
  if (ids === undefined) throw new CliError(`Error: User '${user}' does not exist.`);
  return { ...ids, numeric: false };
}
