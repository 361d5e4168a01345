import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppFolder, AppManifest } from '@deploykit/core';
import { buildMigratePlan, type PlanInput } from './plan.js';
import type { HostFacts } from './host-facts.js';
import { isObjectGrant } from './roles-sql.js';
import { toReplaceableUser, checkIdentifier } from './database-commands.js';

function app(database: AppManifest['database']): AppFolder {
  const manifest: AppManifest = {
    name: 'shop',
    runtime: 'process',
    env: {},
    volumes: [{ name: 'uploads', path: 'data/uploads' }],
    database,
    config: ['config/app.env'],
    secrets: ['secrets/app.env'],
    timeouts: { default: 60 },
    migrate: { transport: 'ssh', with_history: false },
  };
  return { name: 'shop', dir: '/srv/apps/shop', manifestPath: '/srv/apps/shop/app.yaml', manifest };
}

const facts: HostFacts = {
  deployVersion: '0.1.0',
  nodeVersion: 'v20',
  hostName: 'b',
  hostAddress: '10.0.0.2',
  appsRoot: '/data/apps',
  stateDir: '/data/state',
  tools: {},
  freeBytes: 1e12,
  app: { dir: '/data/apps/shop', exists: false, unfinishedRun: null, lock: null },
};

function input(folder: AppFolder, overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    app: folder,
    source: { hostName: 'a', hostAddress: '10.0.0.1', appsRoot: '/srv/apps', stateDir: '/var/lib/deploy', logLevel: 'info', dryRun: false },
    target: { name: 'b', facts },
    runId: 'R1',
    archive: 'shop-X',
    transport: 'ssh',
    withHistory: false,
    replace: false,
    borgEnv: { BORG_REPO: '/var/lib/deploy/borg/shop' },
    archiveHasDump: true,
    fidelity: {},
    stallSeconds: 60,
    retries: 2,
    deployCommand: ['deploy'],
    remoteDeployCommand: ['deploy'],
    estimatedBytes: {},
    dropLeftoverDatabase: false,
    ...overrides,
  };
}

test('a PostgreSQL app plan: steps in order, each with its exact command', () => {
  const plan = buildMigratePlan(input(app({ kind: 'postgres', name: 'shop', roles: ['shop_app'] })));
  assert.deepEqual(
    plan.steps.map((step) => step.id),
    ['lock', 'backup', 'prepare', 'files', 'volume:uploads', 'roles', 'database', 'commit', 'verify-data', 'install', 'start', 'verify', 'finish'],
  );
  const volume = plan.steps.find((step) => step.id === 'volume:uploads')!;
  assert.deepEqual(volume.argv, [
    'deploy', 'stream', 'send', '--to', 'b', '--transport', 'ssh', '--name', 'volume-uploads', '--run-id', 'R1',
    '--producer', '["borg","export-tar","--strip-components=2","::shop-X","-","data/uploads"]',
    '--into', '/data/apps/.migrate-shop-R1/shop/data/uploads', '--stall-seconds', '60', '--retries', '2', '--jsonl', '--quiet',
  ]);
  const database = plan.steps.find((step) => step.id === 'database')!;
  assert.ok(database.argv.includes('["borg","extract","--stdout","::shop-X","db/shop.pgdump"]'));
  assert.ok(database.argv.includes('["pg_restore","--create","--exit-on-error","--no-password","--dbname=postgres"]'));
});

test('a MariaDB app gets its object grants after the restore, and a leftover database is dropped first', () => {
  const plan = buildMigratePlan(input(app({ kind: 'mariadb', name: 'shop', roles: ['shop_app'] }), { dropLeftoverDatabase: true, archiveHasDump: false }));
  const ids = plan.steps.map((step) => step.id);
  assert.ok(ids.indexOf('drop-leftover-database') < ids.indexOf('roles'));
  assert.ok(ids.indexOf('roles') < ids.indexOf('database') && ids.indexOf('database') < ids.indexOf('grants'));
  assert.ok(plan.steps.find((step) => step.id === 'database')!.argv.includes('["mysqldump","--single-transaction","--routines","--triggers","--events","--databases","shop"]'));
});

test('fidelity metadata adds a side-channel step only where export-tar would lose something', () => {
  const lossy = { xattrDump: '# file: a\nuser.x=0sAA==\n', xattrFiles: 1, aclFiles: 0, lateMtimes: [], sparseFiles: [] };
  const plan = buildMigratePlan(input(app({ kind: 'none' }), { fidelity: { uploads: lossy } }));
  const step = plan.steps.find((s) => s.id === 'metadata:uploads');
  assert.deepEqual(step?.argv, ['deploy', 'receive', 'apply-metadata', '--dir', '/data/apps/.migrate-shop-R1/shop/data/uploads']);
  assert.equal(buildMigratePlan(input(app({ kind: 'none' }))).steps.some((s) => s.id.startsWith('metadata:')), false);
});

test('MariaDB grants that name a table, column or routine wait for the restore', () => {
  assert.equal(isObjectGrant('GRANT ALL PRIVILEGES ON `shop`.* TO `shop_app`@`%`'), false);
  assert.equal(isObjectGrant('GRANT RELOAD ON *.* TO `shop_app`@`%`'), false);
  assert.equal(isObjectGrant('GRANT SELECT ON `shop`.`orders` TO `shop_app`@`%`'), true);
  assert.equal(isObjectGrant('GRANT SELECT (`id`, `total`) ON `shop`.`orders` TO `shop_app`@`%`'), true);
  assert.equal(isObjectGrant('GRANT EXECUTE ON PROCEDURE `shop`.`refund` TO `shop_app`@`%`'), true);
});

test('SQL text helpers refuse odd identifiers and make user creation repeatable', () => {
  assert.equal(toReplaceableUser("CREATE USER `u`@`%` IDENTIFIED BY PASSWORD '*AB'"), "CREATE OR REPLACE USER `u`@`%` IDENTIFIED BY PASSWORD '*AB'");
  assert.throws(() => checkIdentifier('role', "x'; DROP TABLE y; --"), /not a plain identifier/);
});
