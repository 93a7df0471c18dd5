/**
 * Node's built-in modules, loaded on first use, from an ES module and from the CommonJS
 * server bundle alike.
 *
 * The usual way, `createRequire(import.meta.url)('node:os')`, needs node:module, and
 * loading node:module loads Node's ES module loader and source map support with it:
 * about 1 ms of a server start that otherwise never needs either (the CommonJS bundle
 * runs without the ES module loader; docs/performance.md, "Start-up").
 * process.getBuiltinModule() (Node 20.16 and later) returns a built-in directly.
 *
 * @example
 * const os = builtin('node:os'); // the same object as `import os from 'node:os'`
 * os.constants.errno.ENOENT;
 */

/** The built-ins that tswtpm loads on first use, and their types. */
interface Builtins {
  'node:child_process': typeof import('node:child_process');
  'node:crypto': typeof import('node:crypto');
  'node:diagnostics_channel': typeof import('node:diagnostics_channel');
  'node:inspector': typeof import('node:inspector');
  'node:module': typeof import('node:module');
  'node:os': typeof import('node:os');
}

type GetBuiltinModule = (id: string) => unknown;

/** The built-in module `id`; Node keeps one per process, so a second call finds it. */
export function builtin<K extends keyof Builtins>(id: K): Builtins[K] {
  const get = (process as { getBuiltinModule?: GetBuiltinModule }).getBuiltinModule;
  if (typeof get !== 'function') {
    throw new Error(
      `tswtpm needs Node.js 20.16 or later (process.getBuiltinModule); this is ${process.version}`,
    );
  }
  return get.call(process, id) as Builtins[K];
}
