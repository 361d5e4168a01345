import { checkIdentifier, quoteMysqlIdentifier, sqlLiteral } from './identifiers.js';
import type { DatabaseEngine, RolesSqlPart } from './engine.js';
import { createMysqldumpRenamer, moveMariadbSchema, MYSQL_ARGV, parseMysqlBatchRows } from './mariadb-staging.js';
import { parseRowCounts } from './postgres.js';
import type { SqlClient } from './sql-client.js';

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
  return !(on === '*.*' || /\.\*$/.test(on)) || /^GRANT\s+[^(]*\(/i.test(grant) || /\bON\s+(FUNCTION|PROCEDURE|PACKAGE)\b/i.test(grant);
}

/** One row's single field, unescaped. */
async function column(client: SqlClient, sql: string, database?: string): Promise<string[]> {
  return parseMysqlBatchRows(await client.query(sql, database)).map((row) => row[0] ?? '');
}

/** MariaDB/MySQL: the mysql client as admin through the socket (~/.my.cnf or MYSQL_UNIX_PORT). */
export const mariadbEngine: DatabaseEngine = {
  kind: 'mariadb',
  tools: ({ liveDump }) => ({ source: liveDump ? ['mysql', 'mysqldump'] : ['mysql'], target: ['mysql'] }),
  clientArgv: (database) => [...MYSQL_ARGV, ...(database === undefined ? [] : [`--database=${database}`])],
  archivedDumpPath: (database) => `db/${database}.sql`,
  liveDumpArgv: (database) => ['mysqldump', '--single-transaction', '--routines', '--triggers', '--events', '--databases', checkIdentifier('database', database)],
  // The dump creates and USEs its database by name: rewrite those statements to the staging name.
  // --comments keeps comments inside routine, trigger and event bodies (the client strips them by default).
  restoreConsumer: (staging, final) => ({ argv: ['mysql', '--batch', '--comments'], filter: () => createMysqldumpRenamer(final, staging) }),

  async databaseExists(client, database) {
    return (await client.query(`SELECT 1 FROM information_schema.schemata WHERE schema_name = ${sqlLiteral(database)};`)).trim() === '1';
  },
  async databaseBytes(client, database) {
    const out = await client.query(`SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = ${sqlLiteral(database)};`);
    return Number(out.trim()) || 0;
  },
  async countRows(client, database) {
    const names = await column(client, `SELECT table_name FROM information_schema.tables WHERE table_schema = ${sqlLiteral(database)} AND table_type = 'BASE TABLE' ORDER BY table_name;`);
    if (names.length === 0) return {};
    // information_schema's table_rows is an estimate for InnoDB: count exactly.
    const statement = names.map((table) => `SELECT ${sqlLiteral(table)}, COUNT(*) FROM ${quoteMysqlIdentifier(database)}.${quoteMysqlIdentifier(table)}`).join(' UNION ALL ');
    return parseRowCounts(await client.query(`${statement};`), '\t');
  },
  // The dump's own CREATE DATABASE (renamed) makes the staging schema, with its charset and collation.
  async createStaging() {},
  async moveDatabase(client, from, to) {
    await moveMariadbSchema(client.host, from, to);
  },
  async finishDatabase() {},
  async dropDatabase(client, database) {
    await client.query(`DROP DATABASE IF EXISTS ${quoteMysqlIdentifier(database)};`);
  },

  async exportRolesSql(client, users, part: RolesSqlPart) {
    if (users.length === 0) return '';
    const accounts = await column(client, buildMariadbAccountsQuery(users));
    const lines: string[] = [];
    for (const account of accounts) {
      if (part !== 'grants') lines.push(`${toReplaceableUser((await column(client, `SHOW CREATE USER ${account};`))[0] ?? '')};`);
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
    if (accounts.length > 0) await client.query(`${accounts.map((account) => `DROP USER IF EXISTS ${account};`).join('\n')}\n`);
  },
};
