import { builtin } from '../../node-builtins.js';

type NodeCrypto = typeof import('node:crypto');

/**
 * node:crypto, loaded on first use. Only state-file and migration keys need it, and
 * importing it costs a server that has no key about 1 MiB of RSS and 2 ms of start-up.
 * Node keeps the loaded module (one per process), so every later call finds it there.
 */
export function nodeCrypto(): NodeCrypto {
  return builtin('node:crypto');
}
