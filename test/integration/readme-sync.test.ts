import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const root = new URL('../../../', import.meta.url);

test('the README example is the code readme-example.test.ts runs', () => {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block !== undefined, 'README has a ts example');
  const file = readFileSync(new URL('test/integration/readme-example.test.ts', root), 'utf8');
  const body = file.split('\n').slice(2).join('\n');
  assert.equal(body, block.replace("from 'tswtpm';", "from '../../src/index.js';"));
});
