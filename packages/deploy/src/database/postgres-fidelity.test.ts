import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '@deploykit/host';
import { readDumpSettings } from './dump-settings.js';
import { POSTGRES_FIDELITY_SQL, postgresEngine } from './postgres.js';
import { createSqlClient, type SqlClient } from './sql-client.js';

// A round trip of an app's roles and database between two throwaway PostgreSQL clusters, doing what
// `deploy migrate` does on each side (extension owners read by the preflight, roles SQL, dump settings,
// object fixups; on the target: bare roles, staging database with the app role's extensions created by
// it, restore, fixups, roles at the commit, rename, database settings), then comparing the catalogs
// field by field. Two extensions cannot keep their owner (hstore in its own schema, untrusted
// pgstattuple): the preflight names both, and they are the only difference.

const PG_BIN = '/usr/lib/postgresql/15/bin';

function asPostgres(argv: string[]): void {
  const result = spawnSync('runuser', ['-u', 'postgres', '--', ...argv], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${argv.join(' ')} failed: ${result.stderr}`);
}

interface Cluster {
  readonly host: LocalHost;
  readonly sql: SqlClient;
  readonly env: Record<string, string>;
}

async function startClusters(dir: string): Promise<[Cluster, Cluster]> {
  asPostgres([
    join(PG_BIN, 'initdb'),
    '-D',
    join(dir, 'a'),
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--no-locale',
    '--no-sync',
    '--no-instructions',
    '-A',
    'trust',
  ]);
  asPostgres(['cp', '-a', join(dir, 'a'), join(dir, 'b')]);
  const clusters: Cluster[] = [];
  for (const [name, port] of [
    ['a', 54_391],
    ['b', 54_392],
  ] as const) {
    asPostgres([
      join(PG_BIN, 'pg_ctl'),
      '-D',
      join(dir, name),
      '-o',
      `-k ${dir} -c listen_addresses='' -p ${port}`,
      '-l',
      join(dir, `${name}.log`),
      '-w',
      'start',
    ]);
    const env = { PGHOST: dir, PGPORT: String(port), PGUSER: 'postgres' };
    const host = new LocalHost(name, env);
    clusters.push({ host, env, sql: createSqlClient(host, postgresEngine.clientArgv) });
  }
  return clusters as [Cluster, Cluster];
}

/** What the source has: roles with settings, expiry, comment, flags and memberships; owners, ACLs, default privileges. */
const FIXTURE = String.raw`
CREATE ROLE app LOGIN PASSWORD 'secret' VALID UNTIL '2031-02-03 04:05:06.5+00' CONNECTION LIMIT 7 CREATEDB BYPASSRLS;
CREATE ROLE reader NOLOGIN NOINHERIT REPLICATION;
CREATE ROLE outsider NOLOGIN;
ALTER ROLE app SET statement_timeout = '5s';
ALTER ROLE app SET search_path = "$user", public, "odd, ""name""";
ALTER ROLE reader SET work_mem = '3MB';
COMMENT ON ROLE app IS 'the app''s own role';
GRANT reader TO app WITH ADMIN OPTION;
CREATE DATABASE notes OWNER app;
ALTER ROLE app IN DATABASE notes SET work_mem = '8MB';
ALTER DATABASE notes SET lock_timeout = '2s';
GRANT ALL ON DATABASE notes TO app;
\connect notes
SET ROLE app;
CREATE EXTENSION pgcrypto;
CREATE SCHEMA side;
CREATE EXTENSION hstore WITH SCHEMA side;
CREATE TABLE t (id int, secret text);
CREATE TABLE u (id serial, v text);
CREATE TABLE side.w (id int);
CREATE FUNCTION side.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
REVOKE ALL ON t FROM app; GRANT SELECT ON t TO app;
GRANT ALL ON u TO app;
GRANT ALL ON side.w TO app, reader;
GRANT ALL ON FUNCTION side.f() TO app;
GRANT ALL ON SCHEMA side TO app;
GRANT SELECT (id), UPDATE (v) ON u TO reader;
GRANT USAGE ON SEQUENCE u_id_seq TO reader;
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA side GRANT EXECUTE ON FUNCTIONS TO reader;
RESET ROLE;
CREATE SCHEMA tools AUTHORIZATION app;
ALTER ROLE app SUPERUSER;
SET ROLE app;
CREATE EXTENSION pgstattuple WITH SCHEMA tools;
RESET ROLE;
ALTER ROLE app NOSUPERUSER;
`;

/** The catalogs compared (server-wide ones for the app's roles; database ones inside notes), one text line per row. */
async function catalogs(sql: SqlClient): Promise<Record<string, string[]>> {
  const lines = async (query: string, database?: string): Promise<string[]> =>
    (await sql.query(`${query}\n`, database)).split('\n').filter(Boolean);
  const result: Record<string, string[]> = {};
  for (const [name, query] of Object.entries(POSTGRES_FIDELITY_SQL.server)) result[name] = await lines(query);
  for (const [name, query] of Object.entries(POSTGRES_FIDELITY_SQL.database))
    result[name] = await lines(query, 'notes');
  return result;
}

test('PostgreSQL roles and database round-trip between two clusters with every role setting, expiry, comment, owner and ACL', {
  timeout: 120_000,
}, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-pgfid-'));
  await chown(dir, Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout), 0);
  try {
    const [a, b] = await startClusters(dir);
    await a.sql.query(FIXTURE);
    const roles = ['app', 'reader'];
    // The source: extension owners (preflight), roles SQL, the dump's database settings, the fixups pg_dump cannot express.
    const owners = await postgresEngine.readExtensionOwners!(a.sql, 'notes', roles);
    assert.deepEqual(owners.extensions, [{ name: 'pgcrypto', schema: 'public', owner: 'app' }]);
    assert.deepEqual(owners.notes, [
      "database: extension hstore is owned by app here but will be owned by the target's admin: PostgreSQL cannot change an extension's owner, and hstore lives in schema side, which the restore creates only after the extension would have to exist",
      "database: extension pgstattuple is owned by app here but will be owned by the target's admin: PostgreSQL cannot change an extension's owner, and pgstattuple is not a trusted extension, so only a superuser can create it",
    ]);
    const usersSql = await postgresEngine.exportRolesSql(a.sql, roles, 'users');
    const settings = await readDumpSettings(
      a.host,
      { argv: ['pg_dump', '--format=custom', '--schema-only', '--no-password', '--dbname=notes'] },
      postgresEngine.settings!,
      dir,
    );
    const fixups = await postgresEngine.exportObjectFixups!(a.sql, 'notes');
    assert.doesNotMatch(
      fixups,
      /pg_extension|pg_shdepend|pg_authid|UPDATE |INSERT |DELETE /,
      'the fixups write no system catalog',
    );
    // The target, in migrate's order: bare roles, staging database (pgcrypto created in it by app), restore, fixups, roles at the commit, rename, settings.
    const staging = postgresEngine.staging;
    assert.equal(staging.kind, 'rename');
    if (staging.kind !== 'rename') return;
    await b.sql.query('CREATE ROLE outsider NOLOGIN;\n');
    await postgresEngine.createMissingRoles(b.sql, roles);
    await staging.createStaging(b.sql, 'dk_run_stage', settings, owners.extensions);
    assert.equal(
      (
        await b.sql.query(
          "SELECT e.extname || ' ' || pg_get_userbyid(e.extowner) || ' ' || pg_get_userbyid(d.datdba) FROM pg_extension e, pg_database d WHERE e.extname <> 'plpgsql' AND d.datname = current_database();\n",
          'dk_run_stage',
        )
      ).trim(),
      'pgcrypto app app',
      'before the restore: pgcrypto made by app, the database owner put back',
    );
    const dump = spawn('pg_dump', ['--format=custom', '--no-password', '--dbname=notes'], {
      env: { ...process.env, ...a.env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const restore = spawn(
      staging.restoreConsumer('dk_run_stage').argv[0]!,
      staging.restoreConsumer('dk_run_stage').argv.slice(1),
      { env: { ...process.env, ...b.env }, stdio: ['pipe', 'inherit', 'inherit'] },
    );
    dump.stdout.pipe(restore.stdin);
    assert.equal(
      await new Promise((resolve) => restore.on('close', resolve)),
      0,
      'pg_restore into the staging database',
    );
    await staging.fixRestored!(b.sql, 'dk_run_stage', fixups);
    await b.sql.query(usersSql);
    await staging.moveDatabase(b.sql, 'dk_run_stage', 'notes');
    await staging.finishDatabase(b.sql, 'notes', settings);

    const source = await catalogs(a.sql);
    const target = await catalogs(b.sql);
    // What the notes named, and only that: hstore and pgstattuple (and pgstattuple's functions, which its untrusted
    // script gave to the superuser that ran it) belong to the target's admin.
    const named = (line: string): boolean => /^(hstore|pgstattuple)\|/.test(line) || line.startsWith('tools.');
    for (const name of ['extensions', 'routineAcls'] as const) {
      source[name] = source[name]!.map((line) =>
        named(line) ? line.replace(/\bapp\b/g, 'postgres').replace(/\|o:postgres$/, '|') : line,
      );
    }
    for (const name of Object.keys(source)) {
      await t.test(name, () =>
        assert.deepEqual(target[name], source[name], `${name} differs between source and target`),
      );
    }
    // The fixture is not trivial: each thing the issue names is there on the source.
    assert.match(source.roles!.join('\n'), /statement_timeout=5s/);
    assert.match(source.roles!.join('\n'), /2031-02-03/);
    assert.match(source.roleComments!.join('\n'), /the app's own role/);
    assert.match(source.roleSettingsInDatabase!.join('\n'), /notes\|app\|\{work_mem=8MB\}/);
    assert.match(source.extensions!.join('\n'), /^pgcrypto\|app\|.*\|public\|o:app$/m);
    assert.match(source.relationAcls!.join('\n'), /public\.t\|r\|app\|\{app=r\/app\}/);
    assert.match(source.relationAcls!.join('\n'), /public\.u\|r\|app\|\{app=arwdDxt\/app\}/);
    assert.ok(source.defaultAcls!.length === 2 && source.columnAcls!.length === 2 && source.memberships!.length === 1);
  } finally {
    for (const name of ['a', 'b'])
      spawnSync(
        'runuser',
        ['-u', 'postgres', '--', join(PG_BIN, 'pg_ctl'), '-D', join(dir, name), '-m', 'immediate', 'stop'],
        { stdio: 'ignore' },
      );
    await rm(dir, { recursive: true, force: true });
  }
});
