import { userIds } from './ids.js';
import { CliError } from './subopts.js';

/**
 * `-r/--runas USER`: after the sockets are open and before any state file is touched,
 * switch to USER's uid, primary gid and supplementary groups (as swtpm does).
 */
export function runAs(user: string): void {
  const ids = userIds(user);
  if (ids === undefined) throw new CliError(`Error: User '${user}' does not exist.`);
  try {
    if (process.getuid?.() === 0) process.setgroups?.([ids.gid]);
    process.setgid?.(ids.gid);
    process.setuid?.(ids.uid);
  } catch (err) {
    throw new CliError(`Error: Could not change to user '${user}': ${(err as Error).message}`);
  }
}
