/**
 * Figures, ratios and targets of one benchmark run, as a text table and as JSON.
 */

/** One figure for one server over all repetitions (each repetition gives one value). */
export interface Stat {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly samples: readonly number[];
}

export type Unit = 'us' | 'ms' | 'MiB' | 'KiB' | 'per-s';

/**
 * How a row's target is judged: the ratio (at most, or at least for rates), the tswtpm
 * value, or tswtpm minus the floor.
 */
export interface Target {
  readonly kind: 'ratio-max' | 'ratio-min' | 'value-max' | 'above-floor-max' | 'floor-ratio-max';
  readonly limit: number;
  readonly text: string;
}

export interface Row {
  readonly id: string;
  readonly label: string;
  readonly unit: Unit;
  readonly tswtpm: Stat | undefined;
  readonly swtpm: Stat | undefined;
  /** Node's own floor: `node -e 0` for start-up and RSS, a node:net echo server for round trips. */
  readonly floor?: Stat;
  /** tswtpm median / swtpm median. */
  readonly ratio: number | undefined;
  readonly target?: Target;
  /** Whether the target is met by this run (undefined: no target or not measurable). */
  readonly met?: boolean;
  readonly note?: string;
}

export function median(xs: ArrayLike<number>): number {
  const a = Array.from(xs).sort((x, y) => x - y);
  if (a.length === 0) return Number.NaN;
  const m = a.length >> 1;
  return a.length % 2 === 1 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

export function stat(samples: readonly number[]): Stat | undefined {
  if (samples.length === 0) return undefined;
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    samples,
  };
}

export function row(
  id: string,
  label: string,
  unit: Unit,
  t: readonly number[],
  s: readonly number[],
  extra: { floor?: readonly number[]; target?: Target; note?: string } = {},
): Row {
  const tswtpm = stat(t);
  const swtpm = stat(s);
  const floor = extra.floor === undefined ? undefined : stat(extra.floor);
  const ratio =
    tswtpm !== undefined && swtpm !== undefined && swtpm.median > 0
      ? tswtpm.median / swtpm.median
      : undefined;
  const r: Row = {
    id,
    label,
    unit,
    tswtpm,
    swtpm,
    ratio,
    ...(floor === undefined ? {} : { floor }),
    ...(extra.target === undefined ? {} : { target: extra.target }),
    ...(extra.note === undefined ? {} : { note: extra.note }),
  };
  const met = judge(r);
  return met === undefined ? r : { ...r, met };
}

function judge(r: Row): boolean | undefined {
  const t = r.target;
  if (t === undefined || r.tswtpm === undefined) return undefined;
  switch (t.kind) {
    case 'ratio-max':
      return r.ratio === undefined ? undefined : r.ratio <= t.limit;
    case 'ratio-min':
      return r.ratio === undefined ? undefined : r.ratio >= t.limit;
    case 'value-max':
      return r.tswtpm.median < t.limit;
    case 'above-floor-max':
      return r.floor === undefined ? undefined : r.tswtpm.median - r.floor.median <= t.limit;
    case 'floor-ratio-max':
      return r.floor === undefined ? undefined : r.tswtpm.median / r.floor.median <= t.limit;
  }
}

function num(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

const UNIT_TEXT: Record<Unit, string> = {
  us: 'µs',
  ms: 'ms',
  MiB: 'MiB',
  KiB: 'KiB',
  'per-s': '/s',
};

function cell(s: Stat | undefined, unit: Unit): string {
  if (s === undefined) return '-';
  return `${num(s.median)} ${UNIT_TEXT[unit]} (${num(s.min)}–${num(s.max)})`;
}

/**
 * A Markdown table: median (min–max) per server, the ratio tswtpm/swtpm, Node's floor
 * (`node -e 0` for start-up and RSS, the node:net echo server for round trips), the target.
 */
export function table(rows: readonly Row[]): string {
  const head = ['Figure', 'tswtpm', 'swtpm 0.7.1', 'ratio', 'Node floor', 'target', 'met'];
  const lines = rows.map((r) => [
    r.label,
    cell(r.tswtpm, r.unit),
    cell(r.swtpm, r.unit),
    r.ratio === undefined ? '-' : r.ratio.toFixed(2),
    r.floor === undefined ? '' : cell(r.floor, r.unit),
    r.target?.text ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}
