import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { formatIssue, type Issue } from './issue.js';
import { validateAppFolder } from './validate-app-folder.js';
import { createTempTree, writeAppFolder } from './test-folders.js';

function formatAll(issues: readonly Issue[], root: string): string[] {
  return issues.map((issue) => `${issue.rule} ${formatIssue(issue, { relativeTo: root })}`);
}

const MANIFEST = [
  'name: wiki', // 1
  'volumes:', // 2
  '  - name: uploads', // 3
  '    path: data/uploads', // 4
  'config:', // 5
  '  - config/app.ini', // 6
  'secrets:', // 7
  '  - secrets/db.env', // 8
  'health:', // 9
  '  base_url: http://127.0.0.1:8080', // 10
  '  checks:', // 11
  '    - name: media', // 12
  '      type: uploads', // 13
  '      volume: uploads', // 14
  '      url_prefix: /media/', // 15
  '',
].join('\n');

async function writeValidWiki(tree: Awaited<ReturnType<typeof createTempTree>>, manifest = MANIFEST): Promise<string> {
  const dir = await writeAppFolder(tree, 'wiki', manifest);
  await tree.write('wiki/config/app.ini', '[app]\n');
  await tree.write('wiki/secrets/db.env', 'PASSWORD=x\n', 0o600);
  return dir;
}

test('a complete app folder is valid and returns the app', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const dir = await writeValidWiki(tree);
  await tree.write('wiki/bin/health', '#!/bin/sh\n', 0o755);
  const result = await validateAppFolder(dir);
  assert.deepEqual(formatAll(result.errors, tree.root), []);
  assert.deepEqual(formatAll(result.warnings, tree.root), []);
  assert.equal(result.app?.name, 'wiki');
  assert.equal(result.app?.dir, dir);
  assert.equal(result.app?.manifestPath, join(dir, 'app.yaml'));
  assert.equal(result.app?.manifest.runtime, 'process');
});

test('an uploads check naming an unknown volume points at its volume key', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const dir = await writeValidWiki(tree, MANIFEST.replace('volume: uploads', 'volume: media'));
  const result = await validateAppFolder(dir);
  assert.equal(result.app, undefined);
  assert.deepEqual(formatAll(result.errors, tree.root), [
    'check-volume-unknown wiki/app.yaml:14:15: health/checks/0/volume: volume "media" is not declared in volumes (known: uploads)',
  ]);
});

test('a missing secret file and a missing config file are errors at their manifest entries', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const dir = await writeValidWiki(tree);
  await rm(join(dir, 'secrets/db.env'));
  await rm(join(dir, 'config/app.ini'));
  const result = await validateAppFolder(dir);
  assert.deepEqual(formatAll(result.errors, tree.root), [
    'config-missing wiki/app.yaml:6:5: config/0: config file config/app.ini does not exist in the app folder: create it or remove it from config',
    'secret-missing wiki/app.yaml:8:5: secrets/0: secret file secrets/db.env does not exist in the app folder: create it (mode 600)',
  ]);
});

test('a world-readable secret is an error saying chmod 600; a group-readable one is a warning', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const dir = await writeValidWiki(
    tree,
    MANIFEST.replace('  - secrets/db.env', '  - secrets/db.env\n  - secrets/api.key'),
  );
  await tree.write('wiki/secrets/db.env', 'PASSWORD=x\n', 0o644);
  await tree.write('wiki/secrets/api.key', 'k\n', 0o640);
  const result = await validateAppFolder(dir);
  assert.deepEqual(formatAll(result.errors, tree.root), [
    'secret-world-readable wiki/app.yaml:8:5: secrets/0: secret file secrets/db.env is accessible by other users (mode 0644): run chmod 600 secrets/db.env',
  ]);
  assert.deepEqual(formatAll(result.warnings, tree.root), [
    'secret-group-readable wiki/app.yaml:9:5: secrets/1: secret file secrets/api.key is accessible by its group (mode 0640): run chmod 600 secrets/api.key unless the group needs it',
  ]);
});

test('missing and non-executable bin scripts say what to do', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const dir = await writeValidWiki(tree);
  await rm(join(dir, 'bin/restore'));
  await tree.write('wiki/bin/start', '#!/bin/sh\n', 0o644);
  // Optional scripts are checked only when present.
  await tree.write('wiki/bin/migrate', '#!/bin/sh\n', 0o600);
  await tree.write('wiki/bin/maintenance', '#!/bin/sh\n', 0o644);
  const result = await validateAppFolder(dir);
  assert.deepEqual(formatAll(result.errors, tree.root), [
    'bin-not-executable wiki/bin/maintenance: bin/maintenance is not executable: run chmod +x bin/maintenance',
    'bin-not-executable wiki/bin/migrate: bin/migrate is not executable: run chmod +x bin/migrate',
    'bin-missing wiki/bin/restore: bin/restore is missing: every app needs bin/install, bin/start, bin/stop, bin/backup, bin/restore',
    'bin-not-executable wiki/bin/start: bin/start is not executable: run chmod +x bin/start',
  ]);
});

test('paths that leave the app folder are errors, and are not probed on disk', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const manifest = MANIFEST.replace('path: data/uploads', 'path: ../shared/uploads').replace(
    '  - secrets/db.env',
    '  - /etc/shadow',
  );
  const dir = await writeValidWiki(tree, manifest);
  const result = await validateAppFolder(dir);
  assert.deepEqual(formatAll(result.errors, tree.root), [
    'volume-path-escapes wiki/app.yaml:4:11: volumes/0/path: volume path "../shared/uploads" leaves the app folder: use a path relative to the app folder without ".."',
    'volume-path-escapes wiki/app.yaml:8:5: secrets/0: secret path "/etc/shadow" leaves the app folder: use a path relative to the app folder without ".."',
  ]);
});

test('a database without a name, duplicate volume names and a folder-name mismatch', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const manifest = [
    'name: wiki-prod',
    'volumes:',
    '  - { name: data, path: a }',
    '  - { name: data, path: b }',
    'database:',
    '  kind: mariadb',
    '',
  ].join('\n');
  const dir = await writeAppFolder(tree, 'wiki', manifest);
  const result = await validateAppFolder(dir);
  assert.deepEqual(formatAll(result.errors, tree.root), [
    'duplicate-volume-name wiki/app.yaml:4:13: volumes/1/name: volume name "data" is already used by volumes/0: give each volume its own name',
    'database-name-required wiki/app.yaml:6:3: database: database kind "mariadb" needs a name: add database.name',
  ]);
  assert.deepEqual(formatAll(result.warnings, tree.root), [
    'folder-name-mismatch wiki/app.yaml:1:7: name: app name "wiki-prod" differs from its folder name "wiki": commands use the app name',
  ]);
});

test('database and role names migrate would refuse are errors here already', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const manifest = [
    'name: wiki',
    'database:',
    '  kind: postgres',
    '  name: "wiki db"',
    '  roles: [wiki, 9lives, "wiki;drop"]',
    '',
  ].join('\n');
  const dir = await writeAppFolder(tree, 'wiki', manifest);
  const result = await validateAppFolder(dir);
  const rule = 'start with a letter or _, then letters, digits, _, $ or -, at most 63 characters';
  assert.deepEqual(formatAll(result.errors, tree.root), [
    `database-identifier-invalid wiki/app.yaml:4:9: database/name: database name "wiki db" is not a plain identifier: it must ${rule}`,
    `database-identifier-invalid wiki/app.yaml:5:17: database/roles/1: role name "9lives" is not a plain identifier: it must ${rule}`,
    `database-identifier-invalid wiki/app.yaml:5:25: database/roles/2: role name "wiki;drop" is not a plain identifier: it must ${rule}`,
  ]);
});

test('schema errors stop before the folder rules run', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  await tree.write('broken/app.yaml', 'name: broken\nport: high\n');
  const result = await validateAppFolder(join(tree.root, 'broken'));
  assert.deepEqual(formatAll(result.errors, tree.root), ['schema broken/app.yaml:2:7: port: must be integer']);
});

test('a secret named twice is reported once, and missing secrets can be downgraded for a first install', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const manifest = `${MANIFEST.replace('  - secrets/db.env', '  - secrets/db.env\n  - secrets/borg.pass')}borg:\n  passphrase_file: secrets/borg.pass\n`;
  const dir = await writeValidWiki(tree, manifest);
  const strict = await validateAppFolder(dir);
  assert.deepEqual(formatAll(strict.errors, tree.root), [
    'secret-missing wiki/app.yaml:9:5: secrets/1: secret file secrets/borg.pass does not exist in the app folder: create it (mode 600)',
  ]);
  const lenient = await validateAppFolder(dir, { allowMissingSecrets: true });
  assert.deepEqual(lenient.errors, []);
  assert.deepEqual(formatAll(lenient.warnings, tree.root), [
    'secret-missing wiki/app.yaml:9:5: secrets/1: secret file secrets/borg.pass does not exist in the app folder: create it (mode 600)',
  ]);
  assert.equal(lenient.app?.manifest.borg?.passphrase_file, 'secrets/borg.pass');
});

test('special files: declared with a relative path and fifo|char|block; escaping paths, other types and duplicates are errors', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const volume = (files: string): string =>
    ['name: wiki', 'volumes:', '  - name: data', '    path: data', `    special_files: ${files}`, ''].join('\n');
  const good = await validateAppFolder(
    await writeAppFolder(
      tree,
      'wiki',
      volume(
        '[{ path: run/queue.fifo, type: fifo }, { path: dev/null, type: char }, { path: dev/loop0, type: block }]',
      ),
    ),
  );
  assert.deepEqual(formatAll(good.errors, tree.root), []);
  assert.deepEqual(good.app?.manifest.volumes[0]?.special_files, [
    { path: 'run/queue.fifo', type: 'fifo' },
    { path: 'dev/null', type: 'char' },
    { path: 'dev/loop0', type: 'block' },
  ]);
  const plain = await validateAppFolder(
    await writeAppFolder(tree, 'wiki', ['name: wiki', 'volumes:', '  - { name: data, path: data }', ''].join('\n')),
  );
  assert.deepEqual(plain.app?.manifest.volumes[0]?.special_files, [], 'none declared by default');
  for (const path of ['../etc/x', '/dev/null', 'a/../../b', './run/q', 'run//q', 'run/', '.']) {
    const bad = await validateAppFolder(
      await writeAppFolder(tree, 'wiki', volume(`[{ path: "${path}", type: fifo }]`)),
    );
    assert.deepEqual(formatAll(bad.errors, tree.root), [
      `schema wiki/app.yaml:5:29: volumes/0/special_files/0/path: must be a path relative to the volume, without a leading or trailing /, and without ".", ".." or empty components (got "${path}")`,
    ]);
  }
  const socket = await validateAppFolder(await writeAppFolder(tree, 'wiki', volume('[{ path: run/s, type: socket }]')));
  assert.deepEqual(formatAll(socket.errors, tree.root), [
    'schema wiki/app.yaml:5:42: volumes/0/special_files/0/type: must be one of: fifo, char, block (got "socket")',
  ]);
  const twice = await validateAppFolder(
    await writeAppFolder(tree, 'wiki', volume('[{ path: dev/null, type: char }, { path: dev/null, type: fifo }]')),
  );
  assert.deepEqual(formatAll(twice.errors, tree.root), [
    'duplicate-special-file wiki/app.yaml:5:61: volumes/0/special_files/1/path: special file "dev/null" is already declared by volumes/0/special_files/0: declare each path once, with its one type',
  ]);
});
