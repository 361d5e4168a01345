import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '@deploykit/host';
import { EventBus } from '@deploykit/core';
import { mariadbEngine } from '../database/mariadb.js';
import { postgresEngine, splitPostgresSettings } from '../database/postgres.js';
import { parseMigrationHeader, type MigrationContents } from '../migrate/migration-header.js';
import { PlannedHost } from './planned-host.js';
import { buildTargetLayout, buildTargetPlan } from './target-plan.js';
import { summariseRun, TargetJournal } from './target-journal.js';
import { performUndo } from './undo.js';

function header(kind: 'postgres' | 'mariadb', withHistory = false): ReturnType<typeof parseMigrationHeader> {
  return parseMigrationHeader({
    kind: 'deploykit-migration',
    app: 'shop',
    runId: '20261201T000000Z-abcdef',
    source: { host: 'a', address: '10.0.0.1', deployVersion: '0.1.0' },
    manifestText: `name: shop\nruntime: process\nvolumes:\n  - name: uploads\n    path: data/uploads\ndatabase:\n  kind: ${kind}\n  name: shop\n  roles: [shop_app]\n`,
    parts: [
      { id: 'files', kind: 'app-folder', expectedBytes: 1 },
      {
        id: 'volume:uploads',
        kind: 'volume',
        expectedBytes: 1,
        volume: { name: 'uploads', path: 'data/uploads' },
        fromArchive: true,
      },
      { id: 'roles', kind: 'db-roles', expectedBytes: 1 },
      { id: 'database', kind: 'database', expectedBytes: 1, fromArchive: true },
      ...(withHistory ? [{ id: 'history', kind: 'borg-repo', expectedBytes: 1 }] : []),
    ],
    database: { engine: kind, name: 'shop', roles: ['shop_app'], bytes: 1 },
    neededBytes: 4,
    tools: ['tar'],
    options: { withHistory, stallSeconds: 60 },
  });
}

const contents: MigrationContents = {
  archive: 'shop-X',
  volumes: {
    uploads: {
      listing: [],
      fidelity: {
        xattrDump: '# file: a\nuser.x=0s\n',
        xattrFiles: 1,
        aclFiles: 0,
        lateMtimes: [['late.txt', '2537784000']],
        sparseFiles: ['big.img'],
      },
    },
  },
};

test('target plan (PostgreSQL, replacing an app): staging database restore, checks before the commit, the old app stopped there', () => {
  const parsed = header('postgres', true);
  const layout = buildTargetLayout(parsed, { appsRoot: '/data/apps', stateDir: '/data/state' });
  assert.equal(layout.stageDatabase, 'dk_20261201t000000z_abcdef_stage');
  assert.equal(layout.repository, '/data/state/borg/shop');
  const plan = buildTargetPlan({
    header: parsed,
    contents,
    layout,
    engine: postgresEngine,
    occupied: { folder: true, database: true, repository: false },
  });
  assert.deepEqual(
    plan.map((step) => step.id),
    [
      'preflight',
      'lock',
      'recover',
      'receive:files',
      'receive:volume:uploads',
      'receive:roles',
      'receive:database',
      'receive:history',
      'assemble',
      'metadata:uploads',
      'verify:uploads',
      'verify-rows',
      'verify-history',
      'commit',
      'install',
      'start',
      'health',
      'finish',
    ],
  );
  const step = (id: string): (typeof plan)[number] => plan.find((candidate) => candidate.id === id)!;
  assert.deepEqual(step('receive:database').commands.at(-1), [
    'pg_restore',
    '--exit-on-error',
    '--no-password',
    '--dbname=dk_20261201t000000z_abcdef_stage',
  ]);
  assert.deepEqual(step('metadata:uploads').commands, [
    ['setfattr', '-h', '--restore=-'],
    ['fallocate', '--dig-holes', '--', 'big.img'],
  ]);
  assert.deepEqual(step('commit').commands[0], ['/data/apps/shop/bin/stop']);
  assert.deepEqual(step('verify-rows').commands, [postgresEngine.clientArgv('dk_20261201t000000z_abcdef_stage')]);
});

test('target plan (MariaDB): the dump waits as a file, rows are counted after the commit restored it, before the app starts', () => {
  const parsed = header('mariadb');
  const layout = buildTargetLayout(parsed, { appsRoot: '/data/apps', stateDir: '/data/state' });
  const plan = buildTargetPlan({
    header: parsed,
    contents,
    layout,
    engine: mariadbEngine,
    occupied: { folder: false, database: true, repository: false },
  });
  const ids = plan.map((step) => step.id);
  assert.ok(
    ids.indexOf('verify-rows') > ids.indexOf('commit') && ids.indexOf('verify-rows') < ids.indexOf('install'),
    ids.join(' '),
  );
  assert.deepEqual(plan.find((step) => step.id === 'receive:database')!.commands, []);
  assert.deepEqual(plan.find((step) => step.id === 'commit')!.commands, [
    mariadbEngine.clientArgv(),
    ['mysqldump', '--single-transaction', '--routines', '--triggers', '--events', '--databases', 'shop'],
    ['mysql', '--batch', '--comments'],
  ]);
});

test('the planned host runs only what its step lists, and journals each command', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'planned-host-'));
  try {
    const journal = new TargetJournal(join(dir, 'run.jsonl'));
    const host = new PlannedHost(new LocalHost(), { id: 'verify:x', commands: [['true']] }, journal);
    assert.equal((await host.run({ argv: ['true'] })).exitCode, 0);
    await assert.rejects(
      host.run({ argv: ['rm', '-rf', '/'] }),
      /tried to run `rm -rf \/`, which its plan does not list/,
    );
    const lines = await TargetJournal.read(journal.path);
    assert.deepEqual(
      lines.map((line) => (line.t === 'command' ? `${line.step} ${line.argv}` : line.t)),
      ['verify:x true'],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('undo is idempotent and looks before it acts; a run record summarises what is still to undo', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'undo-'));
  try {
    const environment = {
      host: new LocalHost(),
      hostContext: {
        hostName: 'b',
        hostAddress: '127.0.0.1',
        appsRoot: dir,
        stateDir: dir,
        logLevel: 'info',
        dryRun: false,
      },
      bus: new EventBus({ runId: 'R' }),
      runId: 'R',
    };
    const { mkdir, writeFile, readFile } = await import('node:fs/promises');
    await mkdir(join(dir, 'aside'));
    await writeFile(join(dir, 'aside', 'old.txt'), 'old');
    // The final place is taken: putting the aside folder back must not clobber it.
    await mkdir(join(dir, 'final'));
    assert.equal(
      await performUndo(environment, { kind: 'rename-path', from: join(dir, 'aside'), to: join(dir, 'final') }),
      false,
    );
    assert.equal(await performUndo(environment, { kind: 'remove-path', path: join(dir, 'final') }), true);
    assert.equal(await performUndo(environment, { kind: 'remove-path', path: join(dir, 'final') }), false);
    assert.equal(
      await performUndo(environment, { kind: 'rename-path', from: join(dir, 'aside'), to: join(dir, 'final') }),
      true,
    );
    assert.equal(await readFile(join(dir, 'final', 'old.txt'), 'utf8'), 'old');

    const journal = new TargetJournal(join(dir, 'run.jsonl'));
    journal.write({
      t: 'run',
      app: 'shop',
      runId: 'R',
      source: 'a',
      pid: 1,
      startTicks: 1,
      parts: [],
      engine: 'postgres',
    });
    const first = journal.undo({ kind: 'remove-path', path: '/x', resumable: true });
    const second = journal.undo({ kind: 'start-app', dir: '/y' });
    journal.undo({ kind: 'drop-database', name: 'dk_r_stage' });
    journal.write({ t: 'cancel', id: second });
    journal.write({ t: 'undone', id: first, ok: false, message: 'busy' });
    journal.write({
      t: 'part',
      part: 'volume:uploads',
      bytes: 3,
      sha256: 'a'.repeat(64),
      archive: 'X',
      fromArchive: true,
    });
    await writeFile(journal.path, `${await readFile(journal.path, 'utf8')}{"t":"und`); // torn by a kill
    const summary = summariseRun(journal.path, await TargetJournal.read(journal.path));
    assert.deepEqual(
      summary.pending.map((entry) => entry.action.kind),
      ['remove-path', 'drop-database'],
      'cancelled and undone ones drop out; a failed undo stays',
    );
    assert.equal(summary.outcome, undefined, 'no end line: the run was killed');
    assert.equal(summary.engine, 'postgres');
    assert.deepEqual(
      summary.verifiedParts.map((part) => part.part),
      ['volume:uploads'],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('PostgreSQL settings split: CREATE DATABASE options and owner make the staging database, the rest waits for the final name', () => {
  const settings = splitPostgresSettings(`--
-- PostgreSQL database dump
--

\\restrict abc
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
CREATE DATABASE "shop-db" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C';


ALTER DATABASE "shop-db" OWNER TO shop_app;

\\unrestrict abc
\\connect -reuse-previous=on "dbname='shop-db'"
COMMENT ON DATABASE "shop-db" IS 'two
lines';
ALTER DATABASE "shop-db" SET statement_timeout TO '5000';
REVOKE CONNECT,TEMPORARY ON DATABASE "shop-db" FROM PUBLIC;
`);
  assert.equal(settings.createOptions, "TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C'");
  assert.equal(settings.owner, 'shop_app');
  assert.deepEqual(settings.statements, [
    `COMMENT ON DATABASE "shop-db" IS 'two\nlines';`,
    `ALTER DATABASE "shop-db" SET statement_timeout TO '5000';`,
    'REVOKE CONNECT,TEMPORARY ON DATABASE "shop-db" FROM PUBLIC;',
  ]);
});
