import { checkIdentifier, quotePgIdentifier, sqlLiteral } from './identifiers.js';
import type { DatabaseEngine, ExtensionOwner } from './engine.js';

/** The SQL (fed to psql on stdin) that counts the rows of every user table, one `name|count` line each. */
export const POSTGRES_ROW_COUNTS_SQL = `SELECT format('SELECT %L, count(*) FROM %I.%I', schemaname || '.' || tablename, schemaname, tablename)
  FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY schemaname, tablename
\\gexec
`;

/** TOC entries of a custom dump that belong to the database itself, not to objects inside it. */
const DATABASE_LEVEL_TOC =
  /^\d+; \d+ \d+ (DATABASE - |DATABASE PROPERTIES - |COMMENT - DATABASE |ACL - DATABASE |SECURITY LABEL - DATABASE )/;
/** An identifier as pg_dump prints it: bare, or double-quoted with "" inside. */
const DUMPED_NAME = String.raw`(?:"(?:[^"]|"")+"|[^\s;]+)`;

/** Settings whose value is a list of quoted items (pg_dumpall's list): each item is carried as its own literal. */
const LIST_SETTINGS = [
  'local_preload_libraries',
  'search_path',
  'session_preload_libraries',
  'shared_preload_libraries',
  'temp_tablespaces',
  'unix_socket_directories',
];

/**
 * SQL run on the source's PostgreSQL (psql -At) that prints SQL recreating the app's roles on the
 * target: created when missing (an existing role is not an error), then altered to the same
 * attributes (every flag, connection limit, expiry) and password verifier (SCRAM hash, never the
 * plain password), role-wide settings (ALTER ROLE SET, the target's own reset first), the comment,
 * and memberships (with ADMIN OPTION). Per-database settings (ALTER ROLE IN DATABASE) travel with
 * the database's own settings (DATABASE PROPERTIES of the dump), so they follow its final name.
 */
export function buildPostgresRolesQuery(roles: readonly string[]): string {
  const list = roles.map((role) => sqlLiteral(checkIdentifier('role', role))).join(', ');
  const lists = LIST_SETTINGS.map((name) => sqlLiteral(name)).join(', ');
  return `SELECT format('DO $do$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %L) THEN CREATE ROLE %I; END IF; END $do$;', rolname, rolname)
  || E'\\n' || format('ALTER ROLE %I WITH %s %s %s %s %s %s %s CONNECTION LIMIT %s PASSWORD %L;', rolname,
       CASE WHEN rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END,
       CASE WHEN rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END,
       CASE WHEN rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
       CASE WHEN rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END,
       CASE WHEN rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
       CASE WHEN rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END,
       CASE WHEN rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END,
       rolconnlimit, rolpassword)
  -- No expiry cannot be set back once a role has one: 'infinity' is the nearest (only when the target's role has one).
  || E'\\n' || CASE WHEN rolvaliduntil IS NULL
       THEN format('DO $do$ BEGIN IF (SELECT rolvaliduntil FROM pg_authid WHERE rolname = %L) IS NOT NULL THEN ALTER ROLE %I VALID UNTIL ''infinity''; END IF; END $do$;', rolname, rolname)
       ELSE format('ALTER ROLE %I VALID UNTIL %L;', rolname, CASE WHEN isfinite(rolvaliduntil) THEN to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00"') ELSE rolvaliduntil::text END) END
  || E'\\n' || format('ALTER ROLE %I RESET ALL;', rolname)
  || COALESCE((SELECT string_agg(E'\\n' || format('ALTER ROLE %I SET %I TO %s;', rolname, setting.name,
       CASE WHEN lower(setting.name) IN (${lists})
         THEN COALESCE((SELECT string_agg(format('%L', CASE WHEN item[1] LIKE '"%' THEN replace(substr(item[1], 2, length(item[1]) - 2), '""', '"') ELSE item[1] END), ', ' ORDER BY n)
                        FROM regexp_matches(setting.value, '("(?:[^"]|"")*"|[^\\s,]+)', 'g') WITH ORDINALITY AS items(item, n)), '''''')
         ELSE format('%L', setting.value) END), '' ORDER BY setting.n)
     FROM (SELECT split_part(entry, '=', 1) AS name, substr(entry, strpos(entry, '=') + 1) AS value, n FROM unnest((SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = 0 AND setrole = pg_authid.oid)) WITH ORDINALITY AS config(entry, n)) AS setting), '')
  || E'\n' || format('COMMENT ON ROLE %I IS %L;', rolname, shobj_description(oid, 'pg_authid'))
FROM pg_authid WHERE rolname IN (${list})
UNION ALL
SELECT format('GRANT %I TO %I%s;', g.rolname, m.rolname, CASE WHEN am.admin_option THEN ' WITH ADMIN OPTION' ELSE '' END)
FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
WHERE m.rolname IN (${list});`;
}

/** Schemas deploy never touches: the system's own. */
const SYSTEM_SCHEMAS = `('pg_catalog', 'information_schema', 'pg_toast')`;
/** Objects an extension made: its script makes them again on the target. */
const NOT_EXTENSION_MEMBER = (catalog: string, oid: string): string =>
  `NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${oid} AND d.deptype = 'e')`;

/**
 * SQL run on the source's app database (psql -At) printing one JSON list: every extension whose owner
 * is not a superuser, with its schema, whether the source's PostgreSQL marks its version trusted, and
 * the extensions it requires. pg_dump records no extension owner (the restore's CREATE EXTENSION makes
 * the restoring admin the owner) and PostgreSQL has no ALTER EXTENSION ... OWNER TO; see
 * planExtensionOwners for which ones the owner can create on the target before the restore.
 */
export const POSTGRES_EXTENSION_OWNERS_SQL = `SELECT COALESCE(json_agg(json_build_object('name', e.extname, 'schema', n.nspname, 'owner', r.rolname,
    'trusted', COALESCE((SELECT bool_or(v.trusted) FROM pg_available_extension_versions v WHERE v.name = e.extname AND v.version = e.extversion), false),
    'requires', COALESCE((SELECT json_agg(x.extname ORDER BY x.extname) FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid
       WHERE d.classid = 'pg_extension'::regclass AND d.objid = e.oid AND d.refclassid = 'pg_extension'::regclass), '[]'::json)) ORDER BY e.extname), '[]'::json)
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace JOIN pg_roles r ON r.oid = e.extowner WHERE NOT r.rolsuper;
`;

/** One row of POSTGRES_EXTENSION_OWNERS_SQL. */
export interface SourceExtension {
  readonly name: string;
  readonly schema: string;
  readonly owner: string;
  readonly trusted: boolean;
  readonly requires: readonly string[];
}

/**
 * Which non-superuser-owned extensions keep their owner: the owner creates them in the fresh staging
 * database before the restore (whose CREATE EXTENSION IF NOT EXISTS then leaves them), in the order
 * their requirements need. That works only for an extension that is trusted (else only a superuser
 * can create it), lives in public (the one schema a fresh database has: the restore creates the
 * others only after the extension would have to exist), is owned by one of the app's roles (the
 * roles the target has at that point) and requires only extensions kept the same way. Every other
 * one arrives owned by the target's admin and gets a note saying so and why.
 */
export function planExtensionOwners(
  found: readonly SourceExtension[],
  roles: readonly string[],
): { extensions: ExtensionOwner[]; notes: string[] } {
  const byName = new Map(found.map((extension) => [extension.name, extension]));
  const why = new Map<string, string | null>();
  const reason = (extension: SourceExtension, seen: readonly string[]): string | null => {
    if (why.has(extension.name)) return why.get(extension.name)!;
    let because: string | null = null;
    if (!roles.includes(extension.owner))
      because = `${extension.owner} is not one of the app's roles (database.roles), so the target may not have it`;
    else if (!extension.trusted)
      because = `${extension.name} is not a trusted extension, so only a superuser can create it`;
    else if (extension.schema !== 'public')
      because = `${extension.name} lives in schema ${extension.schema}, which the restore creates only after the extension would have to exist`;
    else {
      for (const required of extension.requires) {
        const other = byName.get(required);
        if (other === undefined || seen.includes(required) || reason(other, [...seen, extension.name]) !== null) {
          because = `${extension.name} requires extension ${required}, which only the restore creates`;
          break;
        }
      }
    }
    why.set(extension.name, because);
    return because;
  };
  const extensions: ExtensionOwner[] = [];
  const notes: string[] = [];
  const add = (extension: SourceExtension): void => {
    if (extensions.some((kept) => kept.name === extension.name)) return;
    for (const required of extension.requires) add(byName.get(required)!);
    extensions.push({ name: extension.name, schema: extension.schema, owner: extension.owner });
  };
  for (const extension of found) {
    const because = reason(extension, []);
    if (because === null) add(extension);
    else
      notes.push(
        `database: extension ${extension.name} is owned by ${extension.owner} here but will be owned by the target's admin: PostgreSQL cannot change an extension's owner, and ${because}`,
      );
  }
  return { extensions, notes };
}

/**
 * SQL run on the source's app database (psql -At) that prints SQL for what pg_dump cannot express,
 * to run in the restored (staging) database as the target's admin: ACLs that equal the owner's
 * default but are explicit (e.g. after GRANT ALL ON t TO its owner). pg_dump leaves them out, the
 * target would show NULL; a GRANT ALL to the owner makes them explicit. (Extension owners are not
 * fixed up afterwards: their owners create them before the restore, see planExtensionOwners.)
 * Every statement is a DO block whose body is one quoted literal, so no name can end it early.
 */
export const POSTGRES_OBJECT_FIXUPS_SQL = `SELECT format('DO %L;', format('BEGIN IF pg_catalog.to_regclass(%L) IS NOT NULL THEN GRANT ALL ON %s %s TO %I; END IF; END', q, CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, q, pg_get_userbyid(c.relowner)))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL (SELECT format('%I.%I', n.nspname, c.relname) AS q) AS name
WHERE n.nspname NOT IN ${SYSTEM_SCHEMAS} AND c.relacl = acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::"char", c.relowner) AND ${NOT_EXTENSION_MEMBER('pg_class', 'c.oid')}
UNION ALL
SELECT format('DO %L;', format('BEGIN IF pg_catalog.to_regprocedure(%L) IS NOT NULL THEN GRANT ALL ON ROUTINE %s TO %I; END IF; END', q, q, pg_get_userbyid(p.proowner)))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, LATERAL (SELECT format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)) AS q) AS name
WHERE n.nspname NOT IN ${SYSTEM_SCHEMAS} AND p.proacl = acldefault('f', p.proowner) AND ${NOT_EXTENSION_MEMBER('pg_proc', 'p.oid')}
UNION ALL
SELECT format('DO %L;', format('BEGIN IF pg_catalog.to_regtype(%L) IS NOT NULL THEN GRANT ALL ON TYPE %s TO %I; END IF; END', q, q, pg_get_userbyid(t.typowner)))
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace, LATERAL (SELECT format('%I.%I', n.nspname, t.typname) AS q) AS name
WHERE n.nspname NOT IN ${SYSTEM_SCHEMAS} AND t.typacl = acldefault('T', t.typowner) AND ${NOT_EXTENSION_MEMBER('pg_type', 't.oid')}
UNION ALL
SELECT format('DO %L;', format('BEGIN IF pg_catalog.to_regnamespace(%L) IS NOT NULL THEN GRANT ALL ON SCHEMA %I TO %I; END IF; END', n.nspname, n.nspname, pg_get_userbyid(n.nspowner)))
FROM pg_namespace n
WHERE n.nspname NOT IN ${SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%' AND n.nspacl = acldefault('n', n.nspowner) AND ${NOT_EXTENSION_MEMBER('pg_namespace', 'n.oid')}
UNION ALL
-- The database itself: the grant names the database this runs in (the staging one), so it follows the rename.
SELECT format('DO %L;', format('BEGIN EXECUTE format(%L, pg_catalog.current_database()); END', format('GRANT ALL ON DATABASE %%I TO %I', pg_get_userbyid(d.datdba))))
FROM pg_database d WHERE d.datname = current_database() AND d.datacl = acldefault('d', d.datdba);
`;

/**
 * The catalog fields a migration carries for an app's PostgreSQL roles and database, as queries
 * (one text line per row; names, never OIDs) that read the same on a source and a faithful target:
 * `server` ones over the non-built-in roles, `database` ones inside the app's database. The tests
 * compare them field by field (docs/verification.md).
 */
export const POSTGRES_FIDELITY_SQL = {
  server: {
    roles: `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, rolconfig, (SELECT rolpassword FROM pg_authid a WHERE a.oid = r.oid) FROM pg_roles r WHERE rolname !~ '^pg_' AND oid <> 10 ORDER BY rolname;`,
    memberships: `SELECT g.rolname, m.rolname, am.admin_option, pg_get_userbyid(am.grantor) FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member WHERE m.rolname !~ '^pg_' ORDER BY 1, 2;`,
    roleComments: `SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname !~ '^pg_' AND oid <> 10 ORDER BY rolname;`,
    roleSettingsInDatabase: `SELECT COALESCE(d.datname, ''), COALESCE(r.rolname, ''), s.setconfig FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname IS NULL OR d.datname !~ '^dk_' ORDER BY 1, 2;`,
    databases: `SELECT datname, pg_get_userbyid(datdba), datacl, shobj_description(oid, 'pg_database'), datallowconn, datconnlimit FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1') AND datname !~ '^dk_' ORDER BY datname;`,
  },
  database: {
    extensions: `SELECT e.extname, pg_get_userbyid(e.extowner), e.extversion, n.nspname, (SELECT string_agg(s.deptype::text || ':' || pg_get_userbyid(s.refobjid), ',') FROM pg_shdepend s WHERE s.classid = 'pg_extension'::regclass AND s.objid = e.oid AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1;`,
    schemas: `SELECT nspname, pg_get_userbyid(nspowner), nspacl FROM pg_namespace WHERE nspname NOT IN ${SYSTEM_SCHEMAS} AND nspname NOT LIKE 'pg\\_%' ORDER BY 1;`,
    relationAcls: `SELECT format('%s.%s', n.nspname, c.relname), c.relkind, pg_get_userbyid(c.relowner), c.relacl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ${SYSTEM_SCHEMAS} ORDER BY 1;`,
    columnAcls: `SELECT format('%s.%s', n.nspname, c.relname), a.attname, a.attacl FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ${SYSTEM_SCHEMAS} AND a.attacl IS NOT NULL ORDER BY 1, 2;`,
    routineAcls: `SELECT format('%s.%s(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)), pg_get_userbyid(p.proowner), p.proacl FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ${SYSTEM_SCHEMAS} ORDER BY 1;`,
    defaultAcls: `SELECT pg_get_userbyid(a.defaclrole), COALESCE(n.nspname, ''), a.defaclobjtype, a.defaclacl FROM pg_default_acl a LEFT JOIN pg_namespace n ON n.oid = a.defaclnamespace ORDER BY 1, 2, 3;`,
  },
} as const;

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
export function splitPostgresSettings(settingsSql: string): {
  createOptions?: string;
  owner?: string;
  statements: string[];
} {
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
  return {
    ...(createOptions === undefined ? {} : { createOptions }),
    ...(ownerName === undefined ? {} : { owner: ownerName }),
    statements,
  };
}

/** PostgreSQL: psql/pg_dump/pg_restore as the host's admin (PGHOST/PGPORT/PGUSER). */
export const postgresEngine: DatabaseEngine = {
  kind: 'postgres',
  tools: ({ liveDump }) => ({
    source: liveDump ? ['psql', 'pg_dump', 'pg_restore'] : ['psql', 'pg_restore'],
    target: ['psql', 'pg_restore'],
  }),
  clientArgv: (database) => [
    'psql',
    '-X',
    '-q',
    '-A',
    '-t',
    '-v',
    'ON_ERROR_STOP=1',
    '--no-password',
    '-d',
    database ?? 'postgres',
  ],
  archivedDumpPath: (database) => `db/${database}.pgdump`,
  liveDumpArgv: (database) => [
    'pg_dump',
    '--format=custom',
    '--no-password',
    `--dbname=${checkIdentifier('database', database)}`,
  ],
  staging: {
    kind: 'rename',
    async createStaging(client, staging, settingsSql, extensions) {
      const settings = settingsSql === undefined ? undefined : splitPostgresSettings(settingsSql);
      const name = quotePgIdentifier(staging);
      const statements = [`CREATE DATABASE ${name} WITH ${settings?.createOptions ?? 'TEMPLATE = template0'};`];
      if (settings?.owner !== undefined) statements.push(`ALTER DATABASE ${name} OWNER TO ${settings.owner};`);
      // CREATE DATABASE cannot run inside a transaction block: one statement per line, autocommit.
      await client.query(`${statements.join('\n')}\n`);
      if (extensions !== undefined && extensions.length > 0) {
        // Each owner creates its extension here, as the database's owner for that moment (a trusted extension
        // needs CREATE on the database; a grant would leave an explicit ACL behind). No catalog is written.
        const create = extensions.flatMap((extension) => [
          `ALTER DATABASE ${name} OWNER TO ${quotePgIdentifier(extension.owner)};`,
          `SET ROLE ${quotePgIdentifier(extension.owner)};`,
          `CREATE EXTENSION ${quotePgIdentifier(extension.name)} WITH SCHEMA ${quotePgIdentifier(extension.schema)};`,
          'RESET ROLE;',
        ]);
        create.push(`ALTER DATABASE ${name} OWNER TO ${settings?.owner ?? 'CURRENT_USER'};`);
        await client.query(`${create.join('\n')}\n`, staging);
      }
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
    async fixRestored(client, staging, fixupsSql) {
      if (fixupsSql.trim() !== '') await client.query(fixupsSql, staging);
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
    const out = await client.query(
      `SELECT COALESCE((SELECT pg_database_size(datname) FROM pg_database WHERE datname = ${sqlLiteral(database)}), 0);`,
    );
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
  async exportObjectFixups(client, database) {
    const sql = await client.query(POSTGRES_OBJECT_FIXUPS_SQL, checkIdentifier('database', database));
    return sql.trim() === '' ? '' : `${sql.trim()}\n`;
  },
  async readExtensionOwners(client, database, roles) {
    const found = JSON.parse(
      (await client.query(POSTGRES_EXTENSION_OWNERS_SQL, checkIdentifier('database', database))).trim() || '[]',
    ) as SourceExtension[];
    return planExtensionOwners(found, roles);
  },
  async listAccounts(client, roles) {
    if (roles.length === 0) return [];
    const list = roles.map((role) => sqlLiteral(checkIdentifier('role', role))).join(', ');
    return (await client.query(`SELECT rolname FROM pg_roles WHERE rolname IN (${list}) ORDER BY rolname;`))
      .split('\n')
      .filter(Boolean);
  },
  async createMissingRoles(client, roles) {
    const existing = new Set(await this.listAccounts(client, roles));
    const missing = roles.filter((role) => !existing.has(role));
    if (missing.length > 0)
      await client.query(`${missing.map((role) => `CREATE ROLE ${quotePgIdentifier(role)};`).join('\n')}\n`);
    return missing;
  },
  async dropAccounts(client, accounts) {
    if (accounts.length > 0)
      await client.query(`${accounts.map((role) => `DROP ROLE IF EXISTS ${quotePgIdentifier(role)};`).join('\n')}\n`);
  },
  async accountsUsedElsewhere(client, accounts, database) {
    if (accounts.length === 0) return {};
    const out = await client.query(buildPostgresRoleUsageQuery(accounts, database));
    const usage: Record<string, string[]> = {};
    for (const line of out.split('\n').filter(Boolean)) {
      const at = line.indexOf('|');
      const account = line.slice(0, at);
      usage[account] ??= [];
      usage[account].push(line.slice(at + 1));
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
