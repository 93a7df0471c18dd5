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
