import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIssue } from './issue.js';
import { loadGlobalConfig } from './global-config.js';
import { createTempTree } from './test-folders.js';

test('a complete global config loads with defaults applied', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const path = await tree.write(
    'config.yaml',
    [
      'apps_root: /srv/apps',
      'state_dir: /var/lib/deploy',
      'defaults:',
      '  transport: ffl',
      'hosts:',
      '  web2:',
      '    ssh: deploy@127.0.0.3',
      '    address: 127.0.0.3',
      '    apps_root: /data/apps',
      '',
    ].join('\n'),
  );
  const result = await loadGlobalConfig(path);
  assert.deepEqual(result.errors, []);
  assert.equal(result.path, path);
  assert.deepEqual(result.config, {
    apps_root: '/srv/apps',
    state_dir: '/var/lib/deploy',
    defaults: { transport: 'ffl', stall_seconds: 60, retries: 2, keep_migration_archives: 3 },
    hosts: { web2: { ssh: 'deploy@127.0.0.3', address: '127.0.0.3', apps_root: '/data/apps' } },
  });
});

test('global config errors come back with line:column, all at once', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const path = await tree.write(
    'config.yaml',
    [
      'apps_root: srv/apps',
      'defaults:',
      '  retries: -1',
      'hosts:',
      '  web2:',
      '    address: 127.0.0.3',
      '    sshh: web2',
      '',
    ].join('\n'),
  );
  const result = await loadGlobalConfig(path);
  assert.deepEqual(
    result.errors.map((issue) => formatIssue(issue, { relativeTo: tree.root })),
    [
      'config.yaml:1:12: apps_root: must be an absolute path (got "srv/apps")',
      'config.yaml:3:12: defaults/retries: must be >= 0',
      "config.yaml:6:5: hosts/web2: must have required property 'ssh'",
      'config.yaml:7:5: hosts/web2: unknown key "sshh" (known: ssh, ssh_config, apps_root, state_dir, address, env); did you mean "ssh"?',
    ],
  );
  assert.deepEqual(result.config, {
    defaults: { stall_seconds: 60, retries: 2, keep_migration_archives: 3 },
    hosts: {},
  });
});

test('DEPLOY_CONFIG naming a missing file is an error; unset means the empty config', async (t) => {
  const saved = process.env.DEPLOY_CONFIG;
  t.after(() => {
    if (saved === undefined) delete process.env.DEPLOY_CONFIG;
    else process.env.DEPLOY_CONFIG = saved;
  });
  process.env.DEPLOY_CONFIG = '/nonexistent/deploykit/config.yaml';
  const missing = await loadGlobalConfig();
  assert.deepEqual(
    missing.errors.map((issue) => formatIssue(issue)),
    ['/nonexistent/deploykit/config.yaml: global config does not exist: create it or unset DEPLOY_CONFIG'],
  );
  delete process.env.DEPLOY_CONFIG;
  const empty = await loadGlobalConfig();
  assert.deepEqual(empty, {
    config: { defaults: { stall_seconds: 60, retries: 2, keep_migration_archives: 3 }, hosts: {} },
    errors: [],
    warnings: [],
  });
});

test('an empty config file means nothing is set', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const path = await tree.write('config.yaml', '# nothing yet\n');
  const result = await loadGlobalConfig(path);
  assert.deepEqual(result.errors, []);
  assert.deepEqual(result.config, {
    defaults: { stall_seconds: 60, retries: 2, keep_migration_archives: 3 },
    hosts: {},
  });
});
