import type { AppFolder, Host } from '@deploykit/core';
import { DependencyError } from '@deploykit/core';
import { buildMariadbAccountsQuery, buildPostgresRolesQuery, databaseEngine, toReplaceableUser } from './database-commands.js';

async function query(host: Host, argv: string[], input: string, what: string): Promise<string> {
  const result = await host.run({ argv, input });
  if (result.exitCode !== 0) {
    throw new DependencyError('DB_QUERY_FAILED', `${what} failed on ${host.name} (${argv[0]} exit ${result.exitCode}): ${result.stderr.trim()}`, {
      hint: 'Check that the database server runs and that the admin connection (PGHOST/PGUSER, or the MariaDB socket) works for deploy.',
    });
  }
  return result.stdout;
}

/** Which part of the roles SQL: accounts (and grants that need no table), or the grants on objects. */
export type RolesSqlPart = 'users' | 'grants' | 'all';

/** True for a MariaDB GRANT on a table, column or routine (it needs the object to exist). */
export function isObjectGrant(grant: string): boolean {
  const on = /\bON\s+(?:(?:TABLE|FUNCTION|PROCEDURE|PACKAGE)\s+)?(\S+)\s+TO\b/i.exec(grant)?.[1] ?? '';
  return !(on === '*.*' || /\.\*$/.test(on)) || /^GRANT\s+[^(]*\(/i.test(grant) || /\bON\s+(FUNCTION|PROCEDURE|PACKAGE)\b/i.test(grant);
}

/**
 * Prints SQL recreating the app's own database roles/users and their grants on another server:
 * never a global dump, only the roles the manifest names. Existing roles are updated, not errors.
 * `users` is what can be applied before the database exists; `grants` (MariaDB table, column and
 * routine grants) must follow the restore. PostgreSQL object grants travel inside the dump.
 */
export async function exportRolesSql(host: Host, app: AppFolder, part: RolesSqlPart = 'all'): Promise<string> {
  const roles = app.manifest.database.roles ?? [];
  if (roles.length === 0) return '';
  if (databaseEngine(app) === 'postgres') {
    if (part === 'grants') return '';
    const sql = await query(host, ['psql', '-X', '-At', '--no-password', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres'], buildPostgresRolesQuery(roles), 'reading the app roles');
    return sql.trim() === '' ? '' : `${sql.trim()}\n`;
  }
  const mysql = ['mysql', '--batch', '--skip-column-names', '--raw'];
  const accounts = (await query(host, mysql, buildMariadbAccountsQuery(roles), 'listing the app users')).split('\n').filter(Boolean);
  const lines: string[] = [];
  for (const account of accounts) {
    if (part !== 'grants') {
      const create = (await query(host, mysql, `SHOW CREATE USER ${account};`, `SHOW CREATE USER ${account}`)).trim();
      lines.push(`${toReplaceableUser(create)};`);
    }
    const grants = (await query(host, mysql, `SHOW GRANTS FOR ${account};`, `SHOW GRANTS FOR ${account}`)).split('\n').filter(Boolean);
    // The USAGE grant repeats the password clause; CREATE OR REPLACE USER already carried it.
    const wanted = grants
      .filter((grant) => !/^GRANT USAGE ON \*\.\* TO/.test(grant))
      .filter((grant) => part === 'all' || (part === 'grants') === isObjectGrant(grant));
    lines.push(...wanted.map((grant) => `${grant};`));
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
