import { createRequire } from 'node:module';

type NodeCrypto = typeof import('node:crypto');

const require = createRequire(import.meta.url);

/**
 * node:crypto, loaded on first use. Only state-file and migration keys need it, and
 * importing it costs a server that has no key about 1 MiB of RSS and 2 ms of start-up.
 * Node keeps the loaded module (one per process), so every later call finds it there.
 */
export function nodeCrypto(): NodeCrypto {
  return require('node:crypto') as NodeCrypto;
}
