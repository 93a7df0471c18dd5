import { diagChannel } from '../diagnostics-channels.js';

/** What crossed a channel, named as in swtpm's log dumps. */
export type WireKind = 'Ctrl Cmd' | 'Ctrl Rsp' | 'SWTPM_IO_Read' | 'SWTPM_IO_Write';

export interface WireMessage {
  readonly kind: WireKind;
  readonly data: Uint8Array;
  /**
   * A command the emulator sent itself (`--flags startup-*`, the automatic
   * TPM2_Shutdown) and its response: swtpm's `--pcap` records them, its log dumps don't.
   */
  readonly internal?: true;
  /**
   * The TPM (its `Device`) whose channel this crossed: one process may hold many TPMs,
   * and a dump or capture shows one TPM's traffic only.
   */
  readonly source: object;
}

/**
 * Every control request/response and TPM command/response, for `--log level>=2` dumps
 * and for anyone else who subscribes. Publishing costs nothing without subscribers.
 */
export const wireChannel = diagChannel('tswtpm:wire');

export function traceWire(kind: WireKind, data: Uint8Array, source: object): void {
  if (wireChannel.hasSubscribers) {
    wireChannel.publish({ kind, data, source } satisfies WireMessage);
  }
}

/** A command the emulator runs on its own behalf (`internal` set), and its response. */
export function traceInternal(
  kind: 'SWTPM_IO_Read' | 'SWTPM_IO_Write',
  data: Uint8Array,
  source: object,
): void {
  if (wireChannel.hasSubscribers) {
    wireChannel.publish({ kind, data, internal: true, source } satisfies WireMessage);
  }
}

/**
 * swtpm's dump format: ` <kind>: length N`, then lines of up to 16 upper-case hex bytes,
 * each line starting with a space and every byte followed by one.
 */
export function formatWireDump(m: WireMessage): string {
  let out = ` ${m.kind}: length ${m.data.length}\n`;
  for (let i = 0; i < m.data.length; i += 16) {
    let line = ' ';
    for (const b of m.data.subarray(i, i + 16)) {
      line += `${b.toString(16).toUpperCase().padStart(2, '0')} `;
    }
    out += `${line}\n`;
  }
  return out;
}
