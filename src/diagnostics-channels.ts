/**
 * tswtpm's named diagnostics channels (`tswtpm:wire`, `tswtpm:tpm:command`,
 * `tswtpm:cuse:request`, `tswtpm:startup`): node:diagnostics_channel channels, so
 * anyone in the process can subscribe by name.
 *
 * Loading node:diagnostics_channel and creating its channels costs a server start about
 * 0.5 ms, and a `tswtpm socket` process usually has no subscriber at all. A server start
 * therefore calls {@link deferChannels} before its other modules run: if nothing in the
 * process has loaded node:diagnostics_channel by then (a preloaded module that wants to
 * listen has loaded it), no one can be subscribed, and no code but ours runs later. The
 * channels then stay unloaded until tswtpm itself subscribes (`--log level>=2` dumps,
 * `--pcap`, CUSE logging), and `hasSubscribers` answers false without loading anything.
 * Everywhere else (the library, a server with a preloaded subscriber) a channel is the
 * real one from its first use.
 *
 * @example
 * const wire = diagChannel('tswtpm:wire');
 * if (wire.hasSubscribers) wire.publish({ kind: 'Ctrl Cmd', data, source });
 */
import type { Channel, ChannelListener } from 'node:diagnostics_channel';
import { builtin } from './node-builtins.js';

/** The subset of a diagnostics channel that tswtpm uses. */
export interface DiagChannel {
  readonly name: string;
  readonly hasSubscribers: boolean;
  publish(message: unknown): void;
  subscribe(listener: ChannelListener): void;
  unsubscribe(listener: ChannelListener): void;
}

/** Whether channels wait for tswtpm's own first subscription (see deferChannels). */
let deferred = false;

/** Whether node:diagnostics_channel is loaded in this process (unknown: assumed so). */
function channelsLoaded(): boolean {
  const list = (process as { moduleLoadList?: readonly string[] }).moduleLoadList;
  return !Array.isArray(list) || list.includes('NativeModule diagnostics_channel');
}

/**
 * For a server process, before its modules publish anything: if node:diagnostics_channel
 * is not loaded yet, no one is subscribed, and the channels are created only when
 * tswtpm subscribes to one. Returns whether the channels are deferred.
 */
export function deferChannels(): boolean {
  deferred = !channelsLoaded();
  return deferred;
}

/** A tswtpm channel by name; node:diagnostics_channel is loaded on first real use. */
export function diagChannel(name: string): DiagChannel {
  let real: Channel | undefined;
  const get = (): Channel => {
    real ??= builtin('node:diagnostics_channel').channel(name);
    return real;
  };
  return {
    name,
    get hasSubscribers(): boolean {
      if (real !== undefined) return real.hasSubscribers;
      return deferred ? false : get().hasSubscribers;
    },
    publish: (message) => get().publish(message),
    subscribe: (listener) => {
      deferred = false;
      get().subscribe(listener);
    },
    unsubscribe: (listener) => get().unsubscribe(listener),
  };
}
