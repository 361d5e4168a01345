import { test } from 'node:test';
import assert from 'node:assert/strict';
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '@deploykit/core';
import { discoverApps } from './discover-apps.js';
import { formatIssue } from './issue.js';
import { resolveAppsRoot, resolveStateDir } from './resolve-roots.js';
import { createTempTree, writeAppFolder } from './test-folders.js';

test('discovery finds every app folder, skips leftovers and keeps going past a broken app', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  await writeAppFolder(tree, 'wiki', 'name: wiki\n');
  await writeAppFolder(tree, 'shop', 'name: shop\n');
  await writeAppFolder(tree, 'broken', 'name: broken\nruntime: docker\n');
  // Leftovers of swaps and hidden folders hold manifests too, and must not count.
  await writeAppFolder(tree, 'wiki.staging-42', 'name: wiki\n');
  await writeAppFolder(tree, 'wiki.old', 'name: wiki\n');
  await writeAppFolder(tree, '.trash', 'name: wiki\n');
  await tree.write('notes/readme.txt', 'not an app\n');
  await tree.write('stray.yaml', 'name: x\n');
  await symlink(join(tree.root, 'shop'), join(tree.root, 'shop-link'));

  const result = await discoverApps(tree.root);
  assert.equal(result.root, tree.root);
  assert.deepEqual(
    result.entries.map((entry) => entry.folder),
    ['broken', 'shop', 'shop-link', 'wiki'],
  );
  // shop and shop-link carry the same name: both are reported and neither is usable.
  assert.deepEqual(
    result.apps.map((app) => app.name),
    ['wiki'],
  );
  assert.deepEqual(
    result.errors.map((issue) => `${issue.rule} ${formatIssue(issue, { relativeTo: tree.root })}`),
    [
      'schema broken/app.yaml:2:10: runtime: must be one of: process, compose, systemd (got "docker")',
      'duplicate-app-name shop-link/app.yaml:1:7: name: app name "shop" is also used by shop: rename one of them (names must be unique under an apps root)',
      'duplicate-app-name shop/app.yaml:1:7: name: app name "shop" is also used by shop-link: rename one of them (names must be unique under an apps root)',
    ],
  );
  assert.equal(result.entries.find((entry) => entry.folder === 'wiki')?.app?.dir, join(tree.root, 'wiki'));
});

test('a missing apps root is a ConfigError with a hint', async () => {
  await assert.rejects(discoverApps('/nonexistent/deploykit-apps'), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, 'APPS_ROOT_MISSING');
    assert.equal(error.message, 'apps root /nonexistent/deploykit-apps does not exist');
    assert.match(error.hint ?? '', /--apps-root, DEPLOY_APPS_ROOT or apps_root/);
    return true;
  });
});

test('an apps root that is a file is a ConfigError', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const file = await tree.write('apps', 'x');
  await assert.rejects(discoverApps(file), { code: 'APPS_ROOT_NOT_DIRECTORY' });
});

test('the apps root comes from the flag, then DEPLOY_APPS_ROOT, then the config, then /srv/apps', () => {
  const env = { DEPLOY_APPS_ROOT: '/env/apps', DEPLOY_STATE_DIR: '/env/state' };
  const config = { apps_root: '/config/apps', state_dir: '/config/state' };
  assert.equal(resolveAppsRoot({ flag: '/flag/apps', env, config }), '/flag/apps');
  assert.equal(resolveAppsRoot({ env, config }), '/env/apps');
  assert.equal(resolveAppsRoot({ env: {}, config }), '/config/apps');
  assert.equal(resolveAppsRoot({ env: {} }), '/srv/apps');
  assert.equal(resolveAppsRoot({ flag: '', env: { DEPLOY_APPS_ROOT: '' } }), '/srv/apps');
  assert.equal(resolveStateDir({ env, config }), '/env/state');
  assert.equal(resolveStateDir({ env: {}, config }), '/config/state');
  assert.equal(resolveStateDir({ env: {} }), '/var/lib/deploy');
});
