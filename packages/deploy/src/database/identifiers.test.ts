import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateAppFolder } from '@deploykit/manifest';
import { checkIdentifier } from './identifiers.js';

// Names around every edge of the rule: what migrate refuses, validate must refuse too (issue 10).
const NAMES = [
  'wiki',
  'Wiki_2',
  '_private',
  'my-db',
  'a$b',
  'x'.repeat(63),
  'x'.repeat(64),
  '2wiki',
  '-wiki',
  'wiki db',
  'wiki.prod',
  'wiki;drop',
  'wïki',
  'wiki"',
];

test('deploy validate accepts exactly the database names migrate accepts', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'dk-identifiers-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  for (const [index, name] of NAMES.entries()) {
    const dir = join(root, `app${index}`);
    await mkdir(dir);
    await writeFile(
      join(dir, 'app.yaml'),
      `name: app${index}\ndatabase:\n  kind: postgres\n  name: ${JSON.stringify(name)}\n`,
    );
    const validated = (await validateAppFolder(dir)).errors.every(
      (issue) => issue.rule !== 'database-identifier-invalid',
    );
    let migrated = true;
    try {
      checkIdentifier('database', name);
    } catch {
      migrated = false;
    }
    assert.equal(
      validated,
      migrated,
      `"${name}": validate ${validated ? 'accepts' : 'refuses'} it, migrate ${migrated ? 'accepts' : 'refuses'} it`,
    );
  }
});
