import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppFolder, AppManifest } from '@deploykit/core';
import { mariadbEngine } from '../database/mariadb.js';
import { postgresEngine } from '../database/postgres.js';
import { parseMigrationContents, parseMigrationHeader } from './migration-header.js';
import {
  buildMigrationHeader,
  buildSourceParts,
  buildSourcePlan,
  targetTools,
  type PartsInput,
} from './source-plan.js';

const MANIFEST_TEXT = `name: shop
runtime: process
volumes:
  - name: uploads
    path: data/uploads
database:
  kind: postgres
  name: shop
  roles: [shop_app]
`;

function app(database: AppManifest['database']): AppFolder {
  const manifest: AppManifest = {
    name: 'shop',
    runtime: 'process',
    env: {},
    volumes: [{ name: 'uploads', path: 'data/uploads' }],
    database,
    config: [],
    secrets: [],
    timeouts: { default: 60 },
    migrate: { transport: 'ssh', with_history: false },
  };
  return { name: 'shop', dir: '/srv/apps/shop', manifestPath: '/srv/apps/shop/app.yaml', manifest };
}

const source = {
  hostName: 'a',
  hostAddress: '10.0.0.1',
  appsRoot: '/srv/apps',
  stateDir: '/var/lib/deploy',
  logLevel: 'info',
  dryRun: false,
};

function partsInput(folder: AppFolder, overrides: Partial<PartsInput> = {}): PartsInput {
  return {
    app: folder,
    source,
    engine: folder.manifest.database.kind === 'postgres' ? postgresEngine : mariadbEngine,
    archive: 'shop-X',
    withHistory: false,
    borgEnv: { BORG_REPO: '/var/lib/deploy/borg/shop' },
    archiveHasDump: true,
    deployCommand: ['deploy'],
    estimates: { files: 10, 'volume:uploads': 1000, database: 500 },
    ...overrides,
  };
}

test('a PostgreSQL app: parts in bundle order, each with its exact producer; only archive-made parts are resumable', () => {
  const parts = buildSourceParts(partsInput(app({ kind: 'postgres', name: 'shop', roles: ['shop_app'] })));
  assert.deepEqual(
    parts.map((part) => [part.part.id, part.part.kind, part.part.fromArchive, part.producer.join(' ')]),
    [
      [
        'files',
        'app-folder',
        false,
        'tar -c --numeric-owner -C /srv/apps/shop --exclude=./data/uploads --exclude=./node_modules --exclude=./app/node_modules --exclude=./db --exclude=./.state .',
      ],
      ['volume:uploads', 'volume', true, 'borg export-tar --strip-components=2 ::shop-X - data/uploads'],
      ['roles', 'db-roles', false, 'deploy db roles-sql shop --part users'],
      ['database', 'database', true, 'borg extract --stdout ::shop-X db/shop.pgdump'],
    ],
  );
  assert.deepEqual(parts[1]!.producerEnv, { BORG_REPO: '/var/lib/deploy/borg/shop' });
  assert.equal(parts[1]!.part.expectedBytes, 1000);
});

test('a MariaDB app gets a grants part after the database; a live dump is not resumable; history is a tar of the repository', () => {
  const parts = buildSourceParts(
    partsInput(app({ kind: 'mariadb', name: 'shop', roles: ['shop_app'] }), {
      archiveHasDump: false,
      withHistory: true,
    }),
  );
  assert.deepEqual(
    parts.map((part) => part.part.id),
    ['files', 'volume:uploads', 'roles', 'database', 'grants', 'history'],
  );
  const database = parts.find((part) => part.part.id === 'database')!;
  assert.deepEqual([database.part.fromArchive, database.producer[0]], [false, 'mysqldump']);
  assert.deepEqual(parts.at(-1)!.producer, ['tar', '-c', '--numeric-owner', '-C', '/var/lib/deploy/borg/shop', '.']);
  assert.deepEqual(targetTools(parts, mariadbEngine, {}), ['tar', 'mysql', 'mysqldump', 'borg']);
});

test('the source plan: ssh connects before the backup, scp checks first and connects after it; a resume skips and reuses', () => {
  const folder = app({ kind: 'postgres', name: 'shop', roles: ['shop_app'] });
  const parts = buildSourceParts(partsInput(folder));
  const base = {
    app: folder,
    runId: 'R1',
    archive: 'shop-X',
    target: 'b',
    targetArgv: ['deploy', 'receive', 'shop', '--from', '-', '--jsonl'],
    checkArgv: ['deploy', 'receive', 'shop', '--check'],
    parts,
    borgEnv: {},
  };
  const ssh = buildSourcePlan({ ...base, transport: 'ssh', interactive: true });
  assert.deepEqual(
    ssh.steps.map((step) => step.id),
    [
      'lock',
      'connect',
      'backup',
      'contents',
      'send:files',
      'send:volume:uploads',
      'send:roles',
      'send:database',
      'trailer',
      'target',
    ],
  );
  const scp = buildSourcePlan({ ...base, transport: 'scp', interactive: false });
  assert.deepEqual(scp.steps.map((step) => step.id).slice(0, 5), ['lock', 'check', 'backup', 'contents', 'connect']);
  const resumed = buildSourcePlan({
    ...base,
    transport: 'ssh',
    interactive: true,
    reuseArchiveOf: 'R0',
    resume: {
      fromRun: 'R0',
      parts: [
        { id: 'volume:uploads', bytes: 7, sha256: 'a'.repeat(64) },
        { id: 'files', bytes: 1, sha256: 'b'.repeat(64) },
      ],
    },
  });
  assert.deepEqual(
    resumed.steps.map((step) => `${step.id}:${step.kind}`),
    [
      'lock:lock',
      'connect:connect',
      'backup:reuse-archive',
      'contents:contents',
      'send:files:send',
      'send:volume:uploads:skip',
      'send:roles:send',
      'send:database:send',
      'trailer:trailer',
      'target:target',
    ],
    'only archive-made parts are skipped, whatever the target offers',
  );
});

test('the pairing plan: backup, contents, then one ffl share the new host pulls; the source waits for the delivery, not for a report', () => {
  const folder = app({ kind: 'postgres', name: 'shop', roles: ['shop_app'] });
  const parts = buildSourceParts(partsInput(folder));
  const plan = buildSourcePlan({
    app: folder,
    runId: 'R1',
    archive: 'shop-X',
    target: 'the new host',
    targetArgv: ['deploy', 'receive', 'shop', '--from', '<link>'],
    checkArgv: [],
    parts,
    borgEnv: {},
    transport: 'ffl',
    interactive: false,
    pairing: { shareArgv: ['ffl', '-', '--e2ee'] },
  });
  assert.deepEqual(
    plan.steps.map((step) => `${step.id}:${step.kind}`),
    [
      'lock:lock',
      'backup:backup',
      'contents:contents',
      'share:share',
      'send:files:send',
      'send:volume:uploads:send',
      'send:roles:send',
      'send:database:send',
      'trailer:trailer',
      'delivered:delivered',
    ],
  );
  const share = plan.steps.find((step) => step.id === 'share')!;
  assert.deepEqual(share.argv, ['ffl', '-', '--e2ee']);
  assert.match(share.title, /deploy receive shop --from <link>/);
});

test('the paired cutover plan: share first, stop writes only once the new host pulls; end stopped, waiting for the verdict by hand', () => {
  const folder = app({ kind: 'postgres', name: 'shop', roles: ['shop_app'] });
  const parts = buildSourceParts(partsInput(folder, { cutover: true }));
  const plan = buildSourcePlan({
    app: folder,
    runId: 'R2',
    archive: 'shop-Y',
    target: 'the new host',
    targetArgv: ['deploy', 'receive', 'shop', '--from', '<link>'],
    checkArgv: [],
    parts,
    borgEnv: {},
    transport: 'ffl',
    interactive: false,
    pairing: { shareArgv: ['ffl', '-', '--e2ee'] },
    cutover: { stopArgv: ['/srv/apps/shop/bin/maintenance', 'on'], baseArchive: 'shop-X', stopWrites: 'maintenance' },
  });
  assert.deepEqual(
    plan.steps.map((step) => `${step.id}:${step.kind}`),
    [
      'lock:lock',
      'share:share',
      'stop-writes:stop-writes',
      'backup:backup',
      'contents:contents',
      'send:delta:uploads:send',
      'send:roles:send',
      'send:database:send',
      'trailer:trailer',
      'delivered:delivered',
      'await-verdict:await-verdict',
    ],
  );
  assert.match(plan.steps.find((step) => step.id === 'stop-writes')!.title, /^once the new host pulls/);
  const verdict = plan.steps.find((step) => step.id === 'await-verdict')!.title;
  assert.match(verdict, /deploy cutover shop --confirm <code/);
  assert.match(verdict, /deploy maintenance shop off/);
  assert.ok(!plan.steps.some((step) => step.id === 'mark-moved'), 'the run never marks the copy moved itself');
  // Over ssh the cutover keeps its order: connect, stop, backup, contents, parts, the target's report, moved.
  const ssh = buildSourcePlan({
    ...plan,
    app: folder,
    runId: 'R2',
    archive: 'shop-Y',
    targetArgv: ['deploy', 'receive'],
    checkArgv: [],
    parts,
    borgEnv: {},
    transport: 'ssh',
    interactive: true,
    cutover: { stopArgv: ['/srv/apps/shop/bin/stop'], baseArchive: 'shop-X' },
  });
  assert.deepEqual(ssh.steps.map((step) => step.id).slice(0, 5), [
    'lock',
    'connect',
    'stop-writes',
    'backup',
    'contents',
  ]);
  assert.equal(ssh.steps.at(-1)!.id, 'mark-moved');
});

test('a cutover header carries its pairing verdict code through the parser', () => {
  const folder = app({ kind: 'postgres', name: 'shop', roles: ['shop_app'] });
  const parts = buildSourceParts(partsInput(folder, { cutover: true }));
  const cutover = {
    baseArchive: 'shop-X',
    baseRunId: 'R0',
    volumes: { uploads: { base: [['a.txt', 'file', 3, null] as const] } },
    pairing: { confirmCode: 'ACDE-FGHJ', stoppedWith: 'stop' as const },
  };
  const header = buildMigrationHeader({
    app: folder,
    manifestText: MANIFEST_TEXT,
    runId: '20261201T000000Z-abcdef',
    source,
    deployVersion: '0.1.0',
    parts,
    tools: ['tar'],
    withHistory: false,
    stallSeconds: 30,
    targetPlan: [],
    pairing: true,
    cutover,
  });
  const parsed = parseMigrationHeader(JSON.parse(JSON.stringify(header)) as Record<string, unknown>);
  assert.deepEqual(parsed.cutover?.pairing, { confirmCode: 'ACDE-FGHJ', stoppedWith: 'stop' });
  const { pairing: _pairing, ...sessionCutover } = cutover;
  const session = parseMigrationHeader(
    JSON.parse(JSON.stringify({ ...header, cutover: sessionCutover })) as Record<string, unknown>,
  );
  assert.equal(session.cutover?.pairing, undefined, 'a session cutover has none');
});

test('a header round-trips through its parser; a bad one is refused naming what is wrong', () => {
  const folder = app({ kind: 'postgres', name: 'shop', roles: ['shop_app'] });
  const parts = buildSourceParts(partsInput(folder));
  const header = buildMigrationHeader({
    app: folder,
    manifestText: MANIFEST_TEXT,
    runId: '20261201T000000Z-abcdef',
    source,
    deployVersion: '0.1.0',
    parts,
    database: { engine: 'postgres', name: 'shop', roles: ['shop_app'], bytes: 500 },
    tools: ['tar'],
    withHistory: false,
    stallSeconds: 30,
    targetPlan: [],
    heldBytes: 5,
  });
  assert.equal(header.neededBytes, 10 + 1000 + 4096 * 0 + 500 + 5);
  const parsed = parseMigrationHeader(JSON.parse(JSON.stringify(header)) as Record<string, unknown>);
  assert.deepEqual(parsed.parts, header.parts);
  assert.equal(parsed.manifest.database.name, 'shop');
  assert.equal(parsed.options.stallSeconds, 30);
  const broken = (change: Record<string, unknown>): Record<string, unknown> => ({
    ...(JSON.parse(JSON.stringify(header)) as Record<string, unknown>),
    ...change,
  });
  assert.throws(() => parseMigrationHeader(broken({ kind: 'something else' })), /not a migration header/);
  assert.throws(() => parseMigrationHeader(broken({ runId: '../../etc' })), /run id/);
  assert.throws(() => parseMigrationHeader(broken({ app: 'other' })), /app.yaml names shop, the header other/);
  assert.throws(
    () => parseMigrationHeader(broken({ parts: [{ id: 'x', kind: 'teleport', expectedBytes: 1 }] })),
    /unknown kind "teleport"/,
  );
  assert.throws(
    () => parseMigrationHeader(broken({ manifestText: 'name: shop\nruntime: nonsense\n' })),
    /app.yaml is not valid/,
  );
  const contents = parseMigrationContents(
    {
      archive: 'shop-X',
      volumes: {
        uploads: {
          listing: [{ path: 'a', size: 1, sha256: 'c'.repeat(64) }],
          fidelity: { xattrDump: '', lateMtimes: [['x', '1']], sparseFiles: [] },
        },
      },
      rowCounts: { 'public.t': 3 },
    },
    parsed,
  );
  assert.deepEqual(contents.volumes.uploads?.fidelity.lateMtimes, [['x', '1']]);
  assert.deepEqual(contents.rowCounts, { 'public.t': 3 });
  assert.throws(() => parseMigrationContents({ archive: 'shop-X', volumes: {} }, parsed), /listing of volume uploads/);
});
