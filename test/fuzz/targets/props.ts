/**
 * Shared pieces of the Jazzer.js fuzz targets (test/fuzz/targets/*.ts). Each target
 * exports `fuzz(data: Buffer): void`, runs synchronously (Jazzer's --sync mode) and
 * throws only when a property is violated; scripts/fuzz.js bundles and runs them.
 */
import assert from 'node:assert/strict';

/** An error class a codec documents as its way of refusing input. */
type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Runs `fn`; an exception that is not one of `allowed` is a finding (it is rethrown
 * with the codec named, so the crash report says which property broke).
 */
export function only<T>(what: string, fn: () => T, ...allowed: ErrorClass[]): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (allowed.some((c) => err instanceof c)) return undefined;
    const e = err instanceof Error ? err : new Error(String(err));
    throw new Error(`${what} threw an undocumented ${e.name}: ${e.message}`, { cause: e });
  }
}

/** Reads a fuzz input as a sequence of small decisions followed by payloads. */
export class Input {
  private off = 0;
  constructor(private readonly data: Buffer) {}

  get left(): number {
    return this.data.length - this.off;
  }

  u8(): number {
    return this.off < this.data.length ? this.data[this.off++]! : 0;
  }

  u16(): number {
    return (this.u8() << 8) | this.u8();
  }

  /** Up to `n` bytes (fewer at the end of the input). */
  bytes(n: number): Buffer {
    const b = this.data.subarray(this.off, this.off + n);
    this.off += b.length;
    return b;
  }

  rest(): Buffer {
    return this.bytes(this.left);
  }

  /** A length-prefixed (u8) string, read as latin1 so every byte value can appear. */
  str(): string {
    return this.bytes(this.u8()).toString('latin1');
  }
}

/**
 * Splits `stream` into chunks whose sizes come from `plan` (each plan byte is a chunk
 * of 1..256 bytes; an exhausted plan delivers the rest at once), as a peer's writes
 * might arrive split or coalesced by TCP.
 */
export function chunked(stream: Buffer, plan: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; off < stream.length; i++) {
    const n = i < plan.length ? plan[i]! + 1 : stream.length - off;
    out.push(stream.subarray(off, off + n));
    off += n;
  }
  return out;
}

export { assert };
