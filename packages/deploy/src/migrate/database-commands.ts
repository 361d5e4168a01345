import type { AppFolder } from '@deploykit/core';
import { ConfigError } from '@deploykit/core';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

/** Refuses names that are not plain identifiers (they end up in SQL text). */
export function checkIdentifier(kind: string, name: string): string {
  if (!IDENTIFIER.test(name)) {
    throw new ConfigError('DB_IDENTIFIER_INVALID', `${kind} name "${name}" is not a plain identifier`, { hint: 'Use letters, digits, _ and - only.' });
  }
  return name;
}

function sqlLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * SQL run on the source's PostgreSQL (psql -At) that prints SQL recreating the app's roles on the
 * target: created when missing (an existing role is not an error), then altered to the same
 * attributes and password verifier (SCRAM hash, never the plain password), plus memberships.
 */
export function buildPostgresRolesQuery(roles: readonly string[]): string {
  const list = roles.map((role) => sqlLiteral(checkIdentifier('role', role))).join(', ');
  return `SELECT format('DO $do$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %L) THEN CREATE ROLE %I; END IF; END $do$;', rolname, rolname)
  || E'\\n' || format('ALTER ROLE %I WITH %s %s %s %s CONNECTION LIMIT %s PASSWORD %L;', rolname,
       CASE WHEN rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END,
       CASE WHEN rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
       CASE WHEN rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END,
       CASE WHEN rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
       rolconnlimit, rolpassword)
FROM pg_authid WHERE rolname IN (${list})
UNION ALL
SELECT format('GRANT %I TO %I;', g.rolname, m.rolname)
FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
WHERE m.rolname IN (${list});`;
}

/** SQL (MariaDB) listing the accounts of the app's users as 'user'@'host' pairs. */
export function buildMariadbAccountsQuery(users: readonly string[]): string {
  const list = users.map((user) => sqlLiteral(checkIdentifier('user', user))).join(', ');
  return `SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user WHERE User IN (${list}) ORDER BY User, Host;`;
}

/** Turns MariaDB's SHOW CREATE USER output into a statement that is safe to re-run. */
export function toReplaceableUser(showCreateUser: string): string {
  return showCreateUser.replace(/^CREATE USER /, 'CREATE OR REPLACE USER ');
}

/** Kind of an app's database engine for migration purposes. */
export function databaseEngine(app: AppFolder): 'postgres' | 'mariadb' | 'none' {
  const kind = app.manifest.database.kind;
  if (kind === 'postgres') return 'postgres';
  if (kind === 'mysql' || kind === 'mariadb') return 'mariadb';
  return 'none';
}

/** Path of the database dump inside an app's Borg archive (the archive contract, docs/app-folder.md). */
export function archivedDumpPath(app: AppFolder): string {
  const name = app.manifest.database.name ?? app.name;
  return databaseEngine(app) === 'postgres' ? `db/${name}.pgdump` : `db/${name}.sql`;
}

/** Consumer on the target that restores the database stream (it creates the database itself). */
export function buildRestoreConsumerArgv(app: AppFolder): string[] {
  const engine = databaseEngine(app);
  if (engine === 'postgres') {
    // --create: the dump's own CREATE DATABASE (owner, encoding, locale, database-level grants).
    return ['pg_restore', '--create', '--exit-on-error', '--no-password', '--dbname=postgres'];
  }
  return ['mysql', '--batch'];
}

/** Live dump producer on the source, used when the archive holds no dump. */
export function buildLiveDumpArgv(app: AppFolder): string[] {
  const name = checkIdentifier('database', app.manifest.database.name ?? app.name);
  if (databaseEngine(app) === 'postgres') return ['pg_dump', '--format=custom', '--no-password', `--dbname=${name}`];
  return ['mysqldump', '--single-transaction', '--routines', '--triggers', '--events', '--databases', name];
}

/** argv (target) telling whether the app's database exists: prints 1 when it does. */
export function buildDatabaseExistsArgv(app: AppFolder): string[] {
  const name = checkIdentifier('database', app.manifest.database.name ?? app.name);
  if (databaseEngine(app) === 'postgres') {
    return ['psql', '-X', '-At', '--no-password', '-d', 'postgres', '-c', `SELECT 1 FROM pg_database WHERE datname = '${name}'`];
  }
  return ['mysql', '--batch', '--skip-column-names', '-e', `SELECT 1 FROM information_schema.schemata WHERE schema_name = '${name}'`];
}

/** argv (target) dropping the app's database: only used to undo a migration's own restore. */
export function buildDropDatabaseArgv(app: AppFolder): string[] {
  const name = checkIdentifier('database', app.manifest.database.name ?? app.name);
  if (databaseEngine(app) === 'postgres') {
    return ['psql', '-X', '--no-password', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres', '-c', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`];
  }
  return ['mysql', '--batch', '-e', `DROP DATABASE IF EXISTS \`${name}\``];
}

/** Consumer on the target that applies the roles/users SQL. */
export function buildRolesConsumerArgv(app: AppFolder): string[] {
  if (databaseEngine(app) === 'postgres') return ['psql', '-X', '-q', '--no-password', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres'];
  return ['mysql', '--batch'];
}
