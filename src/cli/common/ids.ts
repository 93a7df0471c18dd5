import { readFileSync } from 'node:fs';

/** Looks a name up in an /etc/passwd-style file: name:x:id:... */
function lookup(file: string, name: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined) return Number.parseInt(f[2], 10);
  }
  return undefined;
}

/** User id for a user name (local files only, as the socket options need). */
export const getpwnam = (name: string) => lookup('/etc/passwd', name);
/** Group id for a group name. */
export const getgrnam = (name: string) => lookup('/etc/group', name);

/** uid and primary gid of a user (a name, or a number that is taken as a uid). */
export function userIds(user: string): { uid: number; gid: number } | undefined {
  let text: string;
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4) continue;
    if (f[0] === user || (/^\d+$/.test(user) && f[2] === user)) {
      return { uid: Number.parseInt(f[2]!, 10), gid: Number.parseInt(f[3]!, 10) };
    }
  }
  return undefined;
}
