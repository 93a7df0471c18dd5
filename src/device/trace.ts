import { channel } from 'node:diagnostics_channel';

/** What crossed a channel, named as in swtpm's log dumps. */
export type WireKind = 'Ctrl Cmd' | 'Ctrl Rsp' | 'SWTPM_IO_Read' | 'SWTPM_IO_Write';

export interface WireMessage {
  readonly kind: WireKind;
  readonly data: Uint8Array;
}

/**
 * Every control request/response and TPM command/response, for `--log level>=2` dumps
 * and for anyone else who subscribes. Publishing costs nothing without subscribers.
 */
export const wireChannel = channel('tswtpm:wire');

export function traceWire(kind: WireKind, data: Uint8Array): void {
  if (wireChannel.hasSubscribers) wireChannel.publish({ kind, data } satisfies WireMessage);
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
