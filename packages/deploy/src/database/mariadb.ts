import { checkIdentifier, quoteMysqlIdentifier, sqlLiteral } from './identifiers.js';
import type { DatabaseEngine, RolesSqlPart } from './engine.js';
import { parseRowCounts } from './postgres.js';
import type { SqlClient } from './sql-client.js';

/**
 * The admin client (socket from ~/.my.cnf or MYSQL_UNIX_PORT), SQL always on stdin. Not --raw: without
 * it mysql escapes exactly \0, \t, \n and \\ in values, so multi-line values stay one row.
 */
export const MYSQL_ARGV = ['mysql', '--default-character-set=utf8mb4', '--batch', '--skip-column-names'];

/** Splits mysql --batch output (not --raw) into rows of fields, undoing mysql's \0 \t \n \\ escapes. */
export function parseMysqlBatchRows(text: string): string[][] {
  const unescapeField = (field: string): string =>
    field.replace(/\\(.)/gs, (_match, char: string) => ({ '0': '\0', t: '\t', n: '\n', '\\': '\\' })[char] ?? char);
  return text
    .split('\n')
    .filter((line, index, lines) => !(index === lines.length - 1 && line === ''))
    .map((line) => line.split('\t').map(unescapeField));
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

/** True for a MariaDB GRANT on a table, column or routine (it needs the object to exist). */
export function isObjectGrant(grant: string): boolean {
  const on = /\bON\s+(?:(?:TABLE|FUNCTION|PROCEDURE|PACKAGE)\s+)?(\S+)\s+TO\b/i.exec(grant)?.[1] ?? '';
  return (
    !(on === '*.*' || /\.\*$/.test(on)) ||
    /^GRANT\s+[^(]*\(/i.test(grant) ||
    /\bON\s+(FUNCTION|PROCEDURE|PACKAGE)\b/i.test(grant)
  );
}

/** One row's single field, unescaped. */
async function column(client: SqlClient, sql: string, database?: string): Promise<string[]> {
  return parseMysqlBatchRows(await client.query(sql, database)).map((row) => row[0] ?? '');
}

/** MariaDB/MySQL: the mysql client as admin through the socket (~/.my.cnf or MYSQL_UNIX_PORT). */
export const mariadbEngine: DatabaseEngine = {
  kind: 'mariadb',
  tools: ({ liveDump }) => ({ source: liveDump ? ['mysql', 'mysqldump'] : ['mysql'], target: ['mysql', 'mysqldump'] }),
  clientArgv: (database) => [...MYSQL_ARGV, ...(database === undefined ? [] : [`--database=${database}`])],
  archivedDumpPath: (database) => `db/${database}.sql`,
  liveDumpArgv: (database) => [
    'mysqldump',
    '--single-transaction',
    '--routines',
    '--triggers',
    '--events',
    '--databases',
    checkIdentifier('database', database),
  ],
  // MariaDB cannot rename a database, and a trigger or routine may name its own schema in its body:
  // the dump waits in staging as a file and is restored under its own name at the commit.
  staging: {
    kind: 'dump-file',
    // --comments keeps comments inside routine, trigger and event bodies (the client strips them by default).
    restoreArgv: () => ['mysql', '--batch', '--comments'],
    asideDumpArgv: (database) => [
      'mysqldump',
      '--single-transaction',
      '--routines',
      '--triggers',
      '--events',
      '--databases',
      checkIdentifier('database', database),
    ],
  },

  async databaseExists(client, database) {
    return (
      (
        await client.query(`SELECT 1 FROM information_schema.schemata WHERE schema_name = ${sqlLiteral(database)};`)
      ).trim() === '1'
    );
  },
  async databaseBytes(client, database) {
    const out = await client.query(
      `SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = ${sqlLiteral(database)};`,
    );
    return Number(out.trim()) || 0;
  },
  async countRows(client, database) {
    const names = await column(
      client,
      `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name;`,
      database,
    );
    if (names.length === 0) return {};
    // information_schema's table_rows is an estimate for InnoDB: count exactly.
    const statement = names
      .map((table) => `SELECT ${sqlLiteral(table)}, COUNT(*) FROM ${quoteMysqlIdentifier(table)}`)
      .join(' UNION ALL ');
    return parseRowCounts(await client.query(`${statement};`, database), '\t');
  },
  async dropDatabase(client, database) {
    await client.query(`DROP DATABASE IF EXISTS ${quoteMysqlIdentifier(database)};`);
  },

  async exportRolesSql(client, users, part: RolesSqlPart) {
    if (users.length === 0) return '';
    const accounts = await column(client, buildMariadbAccountsQuery(users));
    const lines: string[] = [];
    for (const account of accounts) {
      if (part !== 'grants')
        lines.push(`${toReplaceableUser((await column(client, `SHOW CREATE USER ${account};`))[0] ?? '')};`);
      const grants = await column(client, `SHOW GRANTS FOR ${account};`);
      // The USAGE grant repeats the password clause; CREATE OR REPLACE USER already carried it.
      const wanted = grants
        .filter((grant) => !/^GRANT USAGE ON \*\.\* TO/.test(grant))
        .filter((grant) => part === 'all' || (part === 'grants') === isObjectGrant(grant));
      lines.push(...wanted.map((grant) => `${grant};`));
    }
    return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
  },
  async listAccounts(client, users) {
    return users.length === 0 ? [] : column(client, buildMariadbAccountsQuery(users));
  },
  // Users need not exist for a restore (DEFINERs are kept as text): they come at the commit.
  async createMissingRoles() {
    return [];
  },
  async dropAccounts(client, accounts) {
    if (accounts.length > 0)
      await client.query(`${accounts.map((account) => `DROP USER IF EXISTS ${account};`).join('\n')}\n`);
  },
  async accountsUsedElsewhere(client, accounts, database) {
    if (accounts.length === 0) return {};
    const users = [
      ...new Set(accounts.map((account) => /^'((?:[^']|'')*)'@/.exec(account)?.[1]?.replace(/''/g, "'") ?? account)),
    ];
    const list = users.map((user) => sqlLiteral(checkIdentifier('user', user))).join(', ');
    const other = database === undefined ? '' : ` AND Db <> ${sqlLiteral(database)}`;
    const rows = parseMysqlBatchRows(
      await client.query(
        `${[
          `SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)), CONCAT('holds privileges on database ', Db) FROM mysql.db WHERE User IN (${list})${other}`,
          `SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)), CONCAT('holds privileges on table ', Db, '.', Table_name) FROM mysql.tables_priv WHERE User IN (${list})${other}`,
          `SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)), CONCAT('holds privileges on routine ', Db, '.', Routine_name) FROM mysql.procs_priv WHERE User IN (${list})${other}`,
        ].join(' UNION ALL ')};`,
      ),
    );
    const usage: Record<string, string[]> = {};
    for (const [account, reason] of rows) {
      if (!account || !reason) continue;
      usage[account] ??= [];
      usage[account].push(reason);
    }
    return usage;
  },
};
