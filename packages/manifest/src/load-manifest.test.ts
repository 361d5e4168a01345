import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { formatIssue, type Issue } from './issue.js';
import { loadManifest, validateManifestText } from './load-manifest.js';
import { createTempTree } from './test-folders.js';

function formatAll(issues: readonly Issue[]): string[] {
  return issues.map((issue) => formatIssue(issue));
}

test('YAML syntax errors come back as issues with line:column', () => {
  const tab = validateManifestText('app.yaml', 'name: wiki\nenv:\n\tAPP: x\n');
  assert.equal(tab.manifest, undefined);
  assert.deepEqual(formatAll(tab.errors), ['app.yaml:3:1: YAML syntax: Tabs are not allowed as indentation']);
  assert.equal(tab.errors[0]?.rule, 'yaml-syntax');
  const unclosed = validateManifestText('app.yaml', 'name: wiki\nconfig: [a, b\nport: 1\n');
  assert.deepEqual(formatAll(unclosed.errors), [
    'app.yaml:3:1: YAML syntax: Flow sequence in block collection must be sufficiently indented and end with a ]',
  ]);
  const compact = validateManifestText('app.yaml', 'name: wiki\nvolumes:\n  - name: uploads\n     path: data\n');
  assert.equal(
    compact.errors[0] && formatIssue(compact.errors[0]),
    'app.yaml:3:11: YAML syntax: Nested mappings are not allowed in compact mappings',
  );
});

test('a duplicate key is a YAML error at the second key', () => {
  const result = validateManifestText('app.yaml', 'name: wiki\nport: 80\nport: 81\n');
  assert.deepEqual(formatAll(result.errors), ['app.yaml:3:1: YAML syntax: Map keys must be unique']);
});

test('an unknown key points at the key and lists the known ones', () => {
  const result = validateManifestText('app.yaml', 'name: wiki\nvolumez:\n  - name: uploads\n    path: data\n');
  assert.equal(result.errors.length, 1);
  const issue = result.errors[0];
  assert.deepEqual(
    { line: issue?.line, column: issue?.column, path: issue?.path, rule: issue?.rule },
    { line: 2, column: 1, path: '', rule: 'schema' },
  );
  assert.equal(
    issue?.message,
    'unknown key "volumez" (known: name, description, runtime, port, env, volumes, database, borg, config, secrets, timeouts, health, migrate); did you mean "volumes"?',
  );
});

test('a wrong type points at the value', () => {
  const text = [
    'name: wiki',
    'health:',
    '  base_url: http://{host_address}:{port}',
    '  checks:',
    '    - name: home',
    '      type: http',
    '      path: /',
    '      status: "ok"',
    '',
  ].join('\n');
  const result = validateManifestText('app.yaml', text);
  assert.deepEqual(formatAll(result.errors), ['app.yaml:8:15: health/checks/0/status: must be integer']);
});

test('a missing required property points at the parent mapping', () => {
  const text = [
    'name: wiki',
    'health:',
    '  base_url: http://x',
    '  checks:',
    '    - name: home',
    '      type: http',
    '      status: 200',
    '',
  ].join('\n');
  const result = validateManifestText('app.yaml', text);
  assert.deepEqual(formatAll(result.errors), ["app.yaml:5:7: health/checks/0: must have required property 'path'"]);
});

test('a missing top-level name points at the document start', () => {
  const result = validateManifestText('app.yaml', '\nruntime: process\n');
  assert.deepEqual(formatAll(result.errors), ["app.yaml:2:1: must have required property 'name'"]);
});

test('a bad enum value names the allowed values and what was given', () => {
  const result = validateManifestText('app.yaml', 'name: wiki\nruntime: docker\nmigrate:\n  transport: rsync\n');
  assert.deepEqual(formatAll(result.errors), [
    'app.yaml:2:10: runtime: must be one of: process, compose, systemd (got "docker")',
    'app.yaml:4:14: migrate/transport: must be one of: ffl, ssh, scp, local (got "rsync")',
  ]);
});

test('a bad name and an unknown check type and a key of another check type are all reported at once', () => {
  const text = [
    'name: My_App', // 1
    'env:', // 2
    '  DEPLOY_APP: x', // 3
    'health:', // 4
    '  base_url: http://x', // 5
    '  checks:', // 6
    '    - name: a', // 7
    '      type: ping', // 8
    '    - name: b', // 9
    '      type: uploads', // 10
    '      volume: media', // 11
    '      url_prefix: /media/', // 12
    '      path: /x', // 13
    '',
  ].join('\n');
  const result = validateManifestText('app.yaml', text);
  assert.deepEqual(formatAll(result.errors), [
    'app.yaml:1:7: name: must be lowercase letters, digits and dashes, start with a letter and be at most 63 characters (got "My_App")',
    'app.yaml:3:3: env: key "DEPLOY_APP" is not allowed: names use letters, digits and _, and must not start with DEPLOY_',
    'app.yaml:8:13: health/checks/0/type: must be one of: http, static, uploads, db-page, login, logs, process (got "ping")',
    'app.yaml:13:7: health/checks/1: unknown key "path" (known: name, type, volume, url_prefix, sample, max_bytes)',
  ]);
});

test('an empty file and a list are not manifests', () => {
  assert.deepEqual(formatAll(validateManifestText('app.yaml', '').errors), [
    'app.yaml:1:1: the document must be a mapping of keys (got nothing)',
  ]);
  assert.deepEqual(formatAll(validateManifestText('app.yaml', '- a\n').errors), [
    'app.yaml:1:1: the document must be a mapping of keys (got a list)',
  ]);
});

test('a missing manifest file is an error without position', async () => {
  const result = await loadManifest('/nonexistent/deploykit/app.yaml');
  assert.deepEqual(formatAll(result.errors), ['/nonexistent/deploykit/app.yaml: manifest does not exist']);
});

test('a minimal manifest gets every default', () => {
  const result = validateManifestText('app.yaml', 'name: wiki\nborg: {}\n');
  assert.deepEqual(result.errors, []);
  assert.deepEqual(result.manifest, {
    name: 'wiki',
    runtime: 'process',
    env: {},
    volumes: [],
    database: { kind: 'none' },
    borg: { repository: '{state_dir}/borg/{app}', archive: '{app}-{now}' },
    config: [],
    secrets: [],
    timeouts: { default: 300 },
    migrate: { transport: 'ssh', with_history: false },
  });
});

test('a complete manifest loads from disk unchanged apart from defaults', async (t) => {
  const tree = await createTempTree();
  t.after(() => tree.dispose());
  const text = `# yaml-language-server: $schema=../schema/app.schema.json
name: shop-api
description: Shop backend
runtime: systemd
port: 8080
env:
  APP_ENV: production
volumes:
  - name: uploads
    path: data/uploads
database:
  kind: postgres
  name: shop
  roles: [shop, shop_ro]
borg:
  passphrase_file: secrets/borg-pass
config: [config/app.ini]
secrets: [secrets/db.env]
timeouts:
  backup: 3600
health:
  base_url: http://{host_address}:{port}
  checks:
    - { name: home, type: http, path: /, status: 200, contains: Shop, not_contains: Traceback, timeout_seconds: 5, retries: 2 }
    - { name: css, type: static, root: public, url_prefix: /static/, files: [site.css] }
    - { name: media, type: uploads, volume: uploads, url_prefix: /media/, sample: 3 }
    - { name: orders, type: db-page, path: /orders/1, contains: Order }
    - { name: login, type: login, login_path: /login, protected_path: /account, credentials_file: secrets/login.env, expect: Signed in }
    - { name: logs, type: logs, files: [logs/app.log], patterns: [Permission denied] }
    - { name: proc, type: process, pid_file: run/app.pid }
migrate:
  transport: ffl
`;
  const path = await tree.write('shop-api/app.yaml', text);
  const result = await loadManifest(path);
  assert.deepEqual(result.errors, []);
  assert.deepEqual(result.warnings, []);
  const manifest = result.manifest;
  assert.ok(manifest);
  assert.equal(manifest.runtime, 'systemd');
  assert.deepEqual(manifest.borg, {
    passphrase_file: 'secrets/borg-pass',
    repository: '{state_dir}/borg/{app}',
    archive: '{app}-{now}',
  });
  assert.deepEqual(manifest.timeouts, { backup: 3600, default: 300 });
  assert.deepEqual(manifest.migrate, { transport: 'ffl', with_history: false });
  assert.deepEqual(manifest.database, { kind: 'postgres', name: 'shop', roles: ['shop', 'shop_ro'] });
  assert.deepEqual(
    manifest.health?.checks.map((check) => check.type),
    ['http', 'static', 'uploads', 'db-page', 'login', 'logs', 'process'],
  );
  assert.deepEqual(manifest.health?.checks[0], {
    name: 'home',
    type: 'http',
    path: '/',
    status: 200,
    contains: 'Shop',
    not_contains: 'Traceback',
    timeout_seconds: 5,
    retries: 2,
  });
  assert.equal(join(tree.root, 'shop-api/app.yaml'), path);
});

test('formatIssue prints relative to a folder when asked', () => {
  const issue: Issue = {
    file: '/srv/apps/wiki/app.yaml',
    line: 12,
    column: 5,
    path: 'health/checks/0',
    message: "must have required property 'path'",
    rule: 'schema',
  };
  assert.equal(
    formatIssue(issue, { relativeTo: '/srv/apps/wiki' }),
    "app.yaml:12:5: health/checks/0: must have required property 'path'",
  );
  assert.equal(formatIssue(issue), "/srv/apps/wiki/app.yaml:12:5: health/checks/0: must have required property 'path'");
});
