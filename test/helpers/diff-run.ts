// Runs one scripted sequence of exchanges against Debian's swtpm 0.7.1 and against
// tswtpm (fresh servers, same options) and compares the transcripts entry by entry.
// A difference passes only when the entry names a row of docs/compat.md and both
// sides show exactly the bytes that row describes.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ExchangeOptions,
  type FdPeer,
  type Reply,
  type Step,
  exchange,
  norm,
  render,
  sleep,
} from './diff-exchange.js';
import {
  type Impl,
  ROOT,
  type Server,
  type ServerOptions,
  type Transport,
  startServer,
} from './diff-servers.js';

const COMPAT = readFileSync(join(ROOT, 'docs/compat.md'), 'utf8');

/** A row of docs/compat.md, named by the text of its first cell. */
export interface CompatRow {
  readonly row: string;
}

/** Returns the row after checking that docs/compat.md has it (as a table row). */
export function compatRow(firstCell: string): CompatRow {
  const found = COMPAT.split('\n').some((l) => l.startsWith(`| ${firstCell} |`));
  if (!found) throw new Error(`docs/compat.md has no row "${firstCell}"`);
  return { row: firstCell };
}

/** A deliberate difference: the compat.md row and exactly what each side must show. */
export interface Allowed {
  readonly rows: readonly CompatRow[];
  readonly swtpm: string;
  readonly tswtpm: string;
}

/**
 * Values that legitimately differ between any two runs (random numbers, clocks):
 * both sides are mapped through `fn` before comparing. The name says what is hidden.
 */
export interface Mask {
  readonly name: string;
  readonly fn: (value: string) => string;
}

export interface EntryOptions extends ExchangeOptions {
  readonly allow?: Allowed;
  readonly mask?: Mask;
  /**
   * The request is split over writes that must all reach the server within swtpm's
   * 500 ms receive deadline (both implementations time it from the first byte), and
   * it is harmless to send again. When the client itself took longer than
   * SEND_BUDGET_MS to send it (a loaded machine), the answer is timing, not
   * reassembly (0.7.1 then closes silently, or answers the partial request and reads
   * the rest as new ones): the exchange is repeated on a fresh connection, up to
   * LATE_ATTEMPTS times, and the first attempt sent in time is the one compared.
   */
  readonly repeatIfLate?: boolean;
}

/** For split requests that may be repeated (see EntryOptions.repeatIfLate). */
export const REPEAT_IF_LATE = { repeatIfLate: true } as const;

/**
 * Above this client-side sending time a split request may have missed the 500 ms
 * deadline (the client's span bounds the server's; the margin covers clock steps).
 */
export const SEND_BUDGET_MS = 400;
const LATE_ATTEMPTS = 6;

interface Entry {
  readonly name: string;
  readonly value: string;
  readonly allow: Allowed | undefined;
  readonly mask: Mask | undefined;
  /** A repeated repeatIfLate exchange: each attempt's sending time. */
  readonly sends?: string;
}

/** What a script sees: one server, and a transcript being recorded. */
export class Ctx {
  readonly entries: Entry[] = [];
  readonly failures: string[] = [];
  constructor(
    readonly server: Server,
    readonly transport: Transport,
  ) {}

  get impl(): Impl {
    return this.server.impl;
  }

  private record(name: string, value: string, o: EntryOptions, sends?: string): void {
    const e = { name, value, allow: o.allow, mask: o.mask };
    this.entries.push(sends === undefined ? e : { ...e, sends });
  }

  /** One exchange on a new control connection. */
  async x(
    name: string,
    steps: readonly Step[] | Step['data'],
    o: EntryOptions = {},
  ): Promise<Reply> {
    const s = Array.isArray(steps) ? steps : [{ data: steps as Step['data'] }];
    const sends: number[] = [];
    for (;;) {
      const r = await exchange(this.server.ctrl, s, o);
      sends.push(r.sendMs ?? 0);
      const late = o.repeatIfLate === true && (r.sendMs ?? 0) > SEND_BUDGET_MS;
      if (late && sends.length < LATE_ATTEMPTS) continue;
      const note = sends.length > 1 ? `attempts sent in ${sends.join(', ')} ms` : undefined;
      this.record(`ctrl: ${name}`, render(r), o, note);
      return r;
    }
  }

  /** One exchange on a new data connection. */
  async d(
    name: string,
    steps: readonly Step[] | Step['data'],
    o: EntryOptions = {},
  ): Promise<Reply> {
    if (this.server.data === undefined) throw new Error('no data channel');
    const s = Array.isArray(steps) ? steps : [{ data: steps as Step['data'] }];
    const r = await exchange(this.server.data, s, o);
    this.record(`data: ${name}`, render(r), o);
    return r;
  }

  /** One write + reply on a data fd passed with CMD_SET_DATAFD (our end of the pair). */
  async p(name: string, peer: FdPeer, data: Step['data'], o: EntryOptions = {}): Promise<Reply> {
    const r = await peer.exchange(data, o.quietMs);
    this.record(`passed fd: ${name}`, render(r), o);
    return r;
  }

  /** Any other observation to compare (file exists, exit code, ...). */
  fact(name: string, value: unknown, o: EntryOptions = {}): void {
    this.record(`fact: ${name}`, String(value), o);
  }

  /** A property both implementations must have; recorded and compared as a fact too. */
  check(name: string, ok: boolean): void {
    this.fact(name, ok);
    if (!ok) this.failures.push(`${this.impl}/${this.transport}: check failed: ${name}`);
  }

  /** Exit code once the process has exited, or 'running' after `ms`. */
  async exitCode(ms = 3000): Promise<string> {
    const r = await Promise.race([this.server.exited, sleep(ms).then(() => 'running')]);
    return String(r);
  }

  /** CMD_SHUTDOWN and its aftermath: reply + EOF, exit code 0, pid file removed. */
  async shutdown(): Promise<void> {
    // Both close right after the reply; a loaded machine may take a while to show it.
    await this.x('SHUTDOWN', '00000003', { quietMs: 3000 });
    this.check('exit code 0 after SHUTDOWN', (await this.exitCode()) === '0');
    this.check('pid file removed after SHUTDOWN', !existsSync(this.server.pidFile));
  }

  stateFile(name: string): boolean {
    return existsSync(join(this.server.stateDir, name));
  }
}

export type Script = (c: Ctx) => Promise<void>;

/** Runs `script` on a fresh server of `impl`; always stops the server. */
async function runOne(impl: Impl, opts: ServerOptions, script: Script): Promise<Ctx> {
  const server = await startServer(impl, opts);
  const ctx = new Ctx(server, opts.transport);
  try {
    await script(ctx);
  } catch (err) {
    const e = err as Error;
    e.message = `${impl}/${opts.transport}: ${e.message}\n${server.output()}`;
    throw e;
  } finally {
    await server.stop();
  }
  return ctx;
}

/**
 * Runs the script against both implementations at the same time and returns one line
 * per mismatch (empty: the transcripts agree, up to the declared allowances).
 */
export async function diffScript(opts: ServerOptions, script: Script): Promise<string[]> {
  const [ref, ours] = await Promise.all([
    runOne('swtpm', opts, script),
    runOne('tswtpm', opts, script),
  ]);
  // DIFF_DUMP=<file>: append both transcripts side by side (for looking at the bytes).
  if (process.env.DIFF_DUMP) {
    const w = (x: Entry[], i: number) => x[i]?.value ?? '-';
    const lines = ref.entries.map(
      (e, i) =>
        `${e.name}${ours.entries[i] ? sendsNote(e, ours.entries[i]) : ''}\n  swtpm  ${w(ref.entries, i)}\n  tswtpm ${w(ours.entries, i)}`,
    );
    appendFileSync(process.env.DIFF_DUMP, `--- ${opts.transport}\n${lines.join('\n')}\n`);
  }
  return [...ref.failures, ...ours.failures, ...compareTranscripts(ref.entries, ours.entries)];
}

/** Which side repeated a slowly sent exchange, and how long each attempt took. */
function sendsNote(ref: Entry, ours: Entry): string {
  const n = [ref, ours].flatMap((e, j) =>
    e.sends ? [`${j ? 'tswtpm' : 'swtpm'} ${e.sends}`] : [],
  );
  return n.length > 0 ? ` (${n.join('; ')})` : '';
}

export function compareTranscripts(ref: readonly Entry[], ours: readonly Entry[]): string[] {
  const out: string[] = [];
  const n = Math.max(ref.length, ours.length);
  for (let i = 0; i < n; i++) {
    const a = ref[i];
    const b = ours[i];
    if (a === undefined || b === undefined || a.name !== b.name) {
      out.push(`#${i}: transcripts diverge: swtpm "${a?.name}" vs tswtpm "${b?.name}"`);
      break;
    }
    const where = `#${i} ${a.name}${sendsNote(a, b)}`;
    if (a.allow !== undefined) {
      const rows = a.allow.rows.map((r) => r.row).join('" + "');
      if (a.value !== norm(a.allow.swtpm) || b.value !== norm(a.allow.tswtpm)) {
        out.push(
          `${where} [allowed by compat.md "${rows}"]: expected swtpm ${norm(a.allow.swtpm)} / tswtpm ${norm(a.allow.tswtpm)}, got swtpm ${a.value} / tswtpm ${b.value}`,
        );
      }
      continue;
    }
    const fa = a.mask ? a.mask.fn(a.value) : a.value;
    const fb = a.mask ? a.mask.fn(b.value) : b.value;
    if (fa !== fb) {
      const m = a.mask ? ` (masked: ${a.mask.name})` : '';
      out.push(`${where}${m}: swtpm ${a.value} / tswtpm ${b.value}`);
    }
  }
  return out;
}
