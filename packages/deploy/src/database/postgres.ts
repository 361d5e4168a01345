import { checkIdentifier, quotePgIdentifier, sqlLiteral } from './identifiers.js';
import type { DatabaseEngine } from './engine.js';

/** The SQL (fed to psql on stdin) that counts the rows of every user table, one `name|count` line each. */
export const POSTGRES_ROW_COUNTS_SQL = `SELECT format('SELECT %L, count(*) FROM %I.%I', schemaname || '.' || tablename, schemaname, tablename)
  FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY schemaname, tablename
\\gexec
`;

/** TOC entries of a custom dump that belong to the database itself, not to objects inside it. */
const DATABASE_LEVEL_TOC = /^\d+; \d+ \d+ (DATABASE - |DATABASE PROPERTIES - |COMMENT - DATABASE |ACL - DATABASE |SECURITY LABEL - DATABASE )/;
/** An identifier as pg_dump prints it: bare, or double-quoted with "" inside. */
const DUMPED_NAME = String.raw`(?:"(?:[^"]|"")+"|[^\s;]+)`;

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

/** Parses `name|count` (psql -At) or `name\tcount` (mysql -NB) lines into a map. */
export function parseRowCounts(text: string, separator: string): Record<string, number> {
  const tables: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const at = line.lastIndexOf(separator);
    if (at <= 0) continue;
    const count = Number(line.slice(at + 1).trim());
    if (Number.isInteger(count)) tables[line.slice(0, at)] = count;
  }
  return tables;
}

/**
 * Splits the settings SQL pg_restore renders for the database-level TOC entries into what makes
 * the staging database (the CREATE DATABASE options and the owner, applied to the staging name)
 * and what names the database and must wait for its final name (comment, ALTER DATABASE SET,
 * grants). psql meta-commands (`\connect`, `\restrict`) and comments are dropped.
 */
export function splitPostgresSettings(settingsSql: string): { createOptions?: string; owner?: string; statements: string[] } {
  const create = new RegExp(`^CREATE DATABASE ${DUMPED_NAME} WITH (.+);$`);
  const owner = new RegExp(`^ALTER DATABASE ${DUMPED_NAME} OWNER TO (.+);$`);
  let createOptions: string | undefined;
  let ownerName: string | undefined;
  const statements: string[] = [];
  let current: string[] = [];
  for (const line of settingsSql.split('\n')) {
    if (current.length === 0) {
      if (line.trim() === '' || line.startsWith('--') || line.startsWith('\\')) continue;
      const createMatch = create.exec(line);
      if (createMatch) {
        createOptions = createMatch[1];
        continue;
      }
      const ownerMatch = owner.exec(line);
      if (ownerMatch) {
        ownerName = ownerMatch[1];
        continue;
      }
      // Session settings of pg_restore's preamble concern its own connection only.
      if (/^(SET |SELECT pg_catalog\.set_config\()/.test(line)) continue;
    }
    current.push(line);
    if (line.trimEnd().endsWith(';')) {
      statements.push(current.join('\n'));
      current = [];
    }
  }
  if (current.length > 0) statements.push(current.join('\n'));
  return { ...(createOptions === undefined ? {} : { createOptions }), ...(ownerName === undefined ? {} : { owner: ownerName }), statements };
}

/** PostgreSQL: psql/pg_dump/pg_restore as the host's admin (PGHOST/PGPORT/PGUSER). */
export const postgresEngine: DatabaseEngine = {
  kind: 'postgres',
  tools: ({ liveDump }) => ({ source: liveDump ? ['psql', 'pg_dump', 'pg_restore'] : ['psql', 'pg_restore'], target: ['psql', 'pg_restore'] }),
  clientArgv: (database) => ['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '--no-password', '-d', database ?? 'postgres'],
  archivedDumpPath: (database) => `db/${database}.pgdump`,
  liveDumpArgv: (database) => ['pg_dump', '--format=custom', '--no-password', `--dbname=${checkIdentifier('database', database)}`],
  staging: {
    kind: 'rename',
    async createStaging(client, staging, settingsSql) {
      const settings = settingsSql === undefined ? undefined : splitPostgresSettings(settingsSql);
      const name = quotePgIdentifier(staging);
      const statements = [`CREATE DATABASE ${name} WITH ${settings?.createOptions ?? 'TEMPLATE = template0'};`];
      if (settings?.owner !== undefined) statements.push(`ALTER DATABASE ${name} OWNER TO ${settings.owner};`);
      // CREATE DATABASE cannot run inside a transaction block: one statement per line, autocommit.
      await client.query(`${statements.join('\n')}\n`);
    },
    // No --create: the dump's CREATE DATABASE names the final database; ours made the staging one.
    restoreConsumer: (staging) => ({ argv: ['pg_restore', '--exit-on-error', '--no-password', `--dbname=${staging}`] }),
    async moveDatabase(client, from, to) {
      await client.query(
        [
          `ALTER DATABASE ${quotePgIdentifier(from)} ALLOW_CONNECTIONS false;`,
          `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = ${sqlLiteral(from)} AND pid <> pg_backend_pid();`,
          `ALTER DATABASE ${quotePgIdentifier(from)} RENAME TO ${quotePgIdentifier(to)};`,
          `ALTER DATABASE ${quotePgIdentifier(to)} ALLOW_CONNECTIONS true;`,
          '',
        ].join('\n'),
      );
    },
    async finishDatabase(client, _database, settingsSql) {
      if (settingsSql === undefined) return;
      const { statements } = splitPostgresSettings(settingsSql);
      if (statements.length > 0) await client.query(`${statements.join('\n')}\n`);
    },
  },
  settings: {
    tocArgv: () => ['pg_restore', '--create', '-l'],
    filterToc: (toc) =>
      toc
        .split('\n')
        .filter((line) => DATABASE_LEVEL_TOC.test(line))
        .map((line) => `${line}\n`)
        .join(''),
    settingsArgv: (listFile) => ['pg_restore', '--create', '-f', '-', '-L', listFile],
  },

  async databaseExists(client, database) {
    return (await client.query(`SELECT 1 FROM pg_database WHERE datname = ${sqlLiteral(database)};`)).trim() === '1';
  },
  async databaseBytes(client, database) {
    const out = await client.query(`SELECT COALESCE((SELECT pg_database_size(datname) FROM pg_database WHERE datname = ${sqlLiteral(database)}), 0);`);
    return Number(out.trim()) || 0;
  },
  async countRows(client, database) {
    return parseRowCounts(await client.query(POSTGRES_ROW_COUNTS_SQL, database), '|');
  },
  async dropDatabase(client, database) {
    await client.query(`DROP DATABASE IF EXISTS ${quotePgIdentifier(database)} WITH (FORCE);\n`);
  },

  async exportRolesSql(client, roles, part) {
    if (roles.length === 0 || part === 'grants') return ''; // object grants travel inside the dump
    const sql = await client.query(buildPostgresRolesQuery(roles));
    return sql.trim() === '' ? '' : `${sql.trim()}\n`;
  },
  async listAccounts(client, roles) {
    if (roles.length === 0) return [];
    const list = roles.map((role) => sqlLiteral(checkIdentifier('role', role))).join(', ');
    return (await client.query(`SELECT rolname FROM pg_roles WHERE rolname IN (${list}) ORDER BY rolname;`)).split('\n').filter(Boolean);
  },
  async createMissingRoles(client, roles) {
    const existing = new Set(await this.listAccounts(client, roles));
    const missing = roles.filter((role) => !existing.has(role));
    if (missing.length > 0) await client.query(`${missing.map((role) => `CREATE ROLE ${quotePgIdentifier(role)};`).join('\n')}\n`);
    return missing;
  },
  async dropAccounts(client, accounts) {
    if (accounts.length > 0) await client.query(`${accounts.map((role) => `DROP ROLE IF EXISTS ${quotePgIdentifier(role)};`).join('\n')}\n`);
  },
  async accountsUsedElsewhere(client, accounts, database) {
    if (accounts.length === 0) return {};
    const out = await client.query(buildPostgresRoleUsageQuery(accounts, database));
    const usage: Record<string, string[]> = {};
    for (const line of out.split('\n').filter(Boolean)) {
      const at = line.indexOf('|');
      (usage[line.slice(0, at)] ??= []).push(line.slice(at + 1));
    }
    return usage;
  },
};

/**
 * SQL (psql -At) naming, per role, what ties it to anything but `database`: pg_shdepend rows of
 * other databases (owned objects, privileges, policies), databases or tablespaces it owns, and
 * roles outside the list that are members of it. One `role|reason` line each.
 */
export function buildPostgresRoleUsageQuery(roles: readonly string[], database: string | undefined): string {
  const list = roles.map((role) => sqlLiteral(checkIdentifier('role', role))).join(', ');
  const own = database === undefined ? 'NULL' : `(SELECT oid FROM pg_database WHERE datname = ${sqlLiteral(database)})`;
  return `SELECT DISTINCT r.rolname || '|' || CASE
    WHEN s.dbid <> 0 THEN 'owns objects or holds privileges in database ' || d.datname
    WHEN s.classid = 'pg_database'::regclass THEN 'owns database ' || (SELECT datname FROM pg_database WHERE oid = s.objid) || ' or holds privileges on it'
    WHEN s.classid = 'pg_tablespace'::regclass THEN 'owns tablespace ' || (SELECT spcname FROM pg_tablespace WHERE oid = s.objid) || ' or holds privileges on it'
    ELSE 'owns a shared object' END
FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid LEFT JOIN pg_database d ON d.oid = s.dbid
WHERE s.refclassid = 'pg_authid'::regclass AND r.rolname IN (${list})
  AND s.dbid IS DISTINCT FROM ${own}
  AND NOT (s.dbid = 0 AND s.classid = 'pg_database'::regclass AND s.objid IS NOT DISTINCT FROM ${own})
UNION ALL
SELECT DISTINCT g.rolname || '|role ' || m.rolname || ' is a member of it'
FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
WHERE g.rolname IN (${list}) AND m.rolname NOT IN (${list});`;
}
