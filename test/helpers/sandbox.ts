// Shared by the seccomp and chroot tests: per-thread seccomp status from /proc, and a
// TPM 2 workload that exercises the worker thread (CreatePrimary RSA-2048), NV state
// writes and Shutdown(STATE).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import type { TpmClient } from '../../src/client/index.js';
import {
  TPM2_SU_STATE,
  createPrimaryRsa2,
  flushContext2,
  nvDefineSpace2,
  nvRead2,
  nvWrite2,
  parseCreatePrimaryRsa2,
  parseResponse,
  shutdown2,
} from '../../src/protocol/tpm/commands.js';

export interface ThreadSeccomp {
  readonly tid: string;
  readonly seccomp: string | undefined;
  readonly filters: string | undefined;
  readonly noNewPrivs: string | undefined;
}

/** `Seccomp:`, `Seccomp_filters:` and `NoNewPrivs:` of every thread of `pid`. */
export function threadSeccomp(pid: number): ThreadSeccomp[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const text = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)$`, 'm').exec(text)?.[1];
    return {
      tid,
      seccomp: field('Seccomp'),
      filters: field('Seccomp_filters'),
      noNewPrivs: field('NoNewPrivs'),
    };
  });
}

/**
 * Waits (up to 5 s) for the filter on every thread. As in swtpm, the pid file and the
 * listening sockets exist a moment before the filter goes in (runtime-features.md
 * §1.3: pid file at step 7, filter at step 12); `-d` and CUSE report ready after it.
 */
export async function waitForFilter(pid: number): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (threadSeccomp(pid).every((t) => t.seccomp === '2')) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Asserts that every thread runs under exactly one filter (mode 2), or none. */
export function assertFilter(pid: number, on: boolean): ThreadSeccomp[] {
  const threads = threadSeccomp(pid);
  // main + V8 platform workers + libuv's pool, at least
  assert.ok(threads.length >= 5, `only ${threads.length} threads`);
  for (const t of threads) {
    assert.equal(t.seccomp, on ? '2' : '0', `thread ${t.tid}: Seccomp ${t.seccomp}`);
    assert.equal(t.filters, on ? '1' : '0', `thread ${t.tid}: Seccomp_filters ${t.filters}`);
    if (on) assert.equal(t.noNewPrivs, '1');
  }
  return threads;
}

export const NV_INDEX = 0x01500016;
export const NV_DATA = Buffer.from('written under the sandbox 0123!');

const rcOf = (rsp: Uint8Array) => parseResponse(rsp).rc;

/**
 * CreatePrimary RSA-2048 (a long command: libtpms runs it on a libuv worker thread),
 * NV_DefineSpace + NV_Write + NV_Read (state file writes), then Shutdown(STATE).
 * Returns every response code in order.
 */
export async function stateWorkload(tpm: TpmClient): Promise<number[]> {
  const rcs: number[] = [];
  const cp = await tpm.transmit(createPrimaryRsa2(2048), { timeoutMs: 60000 });
  rcs.push(rcOf(cp));
  if (rcOf(cp) === 0) {
    assert.equal(parseCreatePrimaryRsa2(cp).modulus.length, 256);
    rcs.push(rcOf(await tpm.transmit(flushContext2(parseCreatePrimaryRsa2(cp).handle))));
  }
  rcs.push(rcOf(await tpm.transmit(nvDefineSpace2(NV_INDEX, NV_DATA.length))));
  rcs.push(rcOf(await tpm.transmit(nvWrite2(NV_INDEX, NV_DATA))));
  const rd = await tpm.transmit(nvRead2(NV_INDEX, NV_DATA.length));
  rcs.push(rcOf(rd));
  assert.ok(Buffer.from(rd).includes(NV_DATA), 'NV_Read returns what was written');
  rcs.push(rcOf(await tpm.transmit(shutdown2(TPM2_SU_STATE))));
  return rcs;
}

/** After a restart with startup-state: the NV index still holds NV_DATA. */
export async function readBack(tpm: TpmClient): Promise<number> {
  const rd = await tpm.transmit(nvRead2(NV_INDEX, NV_DATA.length));
  if (rcOf(rd) === 0) assert.ok(Buffer.from(rd).includes(NV_DATA));
  return rcOf(rd);
}
