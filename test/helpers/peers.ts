// Misbehaving peers for the flood tests: a writer that never reads, a crowd of
// connects, and what a server process holds meanwhile (/proc/PID/status, /proc/PID/fd).
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Endpoint } from './diff-servers.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resident set size of `pid` in KiB (VmRSS). */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

/** Open file descriptors of `pid`. */
export const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** Samples `pid`'s RSS every 50 ms until stop() and returns the largest value (KiB). */
export function rssPeak(pid: number): { stop(): number } {
  let peak = rssKiB(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rssKiB(pid));
    } catch {}
  }, 50);
  return {
    stop() {
      clearInterval(t);
      try {
        peak = Math.max(peak, rssKiB(pid));
      } catch {}
      return peak;
    },
  };
}

/** A connected socket (the caller destroys it). */
export function connect(ep: Endpoint): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    s.once('error', reject);
    const ok = () => {
      s.off('error', reject);
      resolve(s);
    };
    if ('port' in ep) s.connect(ep.port, '127.0.0.1', ok);
    else s.connect(ep.path, ok);
  });
}

export interface FloodResult {
  /** Bytes the kernel took from us. */
  readonly sent: number;
  /** The writer stopped because the server stopped reading (no drain for `idleMs`). */
  readonly stalled: boolean;
}

/**
 * Writes `unit` over and over on `sock`, which never reads, until `maxBytes` went out,
 * `maxMs` passed, or the socket did not drain for `idleMs` (the server pushes back).
 */
export async function flood(
  sock: Socket,
  unit: Uint8Array,
  o: { maxBytes: number; maxMs: number; idleMs: number },
): Promise<FloodResult> {
  sock.pause();
  const copies = Math.max(1, Math.floor(65536 / unit.length));
  const chunk = Buffer.concat(Array.from({ length: copies }, () => unit));
  const end = Date.now() + o.maxMs;
  let sent = 0;
  while (sent < o.maxBytes && Date.now() < end && !sock.destroyed) {
    sent += chunk.length;
    if (sock.write(chunk)) continue;
    const drained = await Promise.race([
      once(sock, 'drain').then(() => true),
      once(sock, 'close').then(() => false),
      sleep(o.idleMs).then(() => false),
    ]);
    if (!drained) return { sent: sent - sock.writableLength, stalled: true };
  }
  return { sent: sent - sock.writableLength, stalled: false };
}

/**
 * Opens `n` connections to `ep` without waiting for each (a full backlog leaves TCP
 * connects pending and fails Unix ones with EAGAIN). Resolves after `settleMs` with the
 * sockets (connected or not) and how many completed.
 */
export async function crowd(
  ep: Endpoint,
  n: number,
  settleMs: number,
): Promise<{ socks: Socket[]; connected: () => number }> {
  const socks: Socket[] = [];
  let connected = 0;
  for (let i = 0; i < n; i++) {
    const s = new Socket();
    s.on('error', () => {});
    s.once('connect', () => connected++);
    if ('port' in ep) s.connect(ep.port, '127.0.0.1');
    else s.connect(ep.path);
    socks.push(s);
    if (i % 100 === 99) await sleep(1);
  }
  await sleep(settleMs);
  return { socks, connected: () => connected };
}
