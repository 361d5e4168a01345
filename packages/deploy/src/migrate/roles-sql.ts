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

/**
 * Prints SQL recreating the app's own database roles/users and their grants on another server:
 * never a global dump, only the roles the manifest names. Existing roles are updated, not errors.
 */
export async function exportRolesSql(host: Host, app: AppFolder): Promise<string> {
  const roles = app.manifest.database.roles ?? [];
  if (roles.length === 0) return '';
  if (databaseEngine(app) === 'postgres') {
    const sql = await query(host, ['psql', '-X', '-At', '--no-password', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres'], buildPostgresRolesQuery(roles), 'reading the app roles');
    return sql.trim() === '' ? '' : `${sql.trim()}\n`;
  }
  const mysql = ['mysql', '--batch', '--skip-column-names', '--raw'];
  const accounts = (await query(host, mysql, buildMariadbAccountsQuery(roles), 'listing the app users')).split('\n').filter(Boolean);
  const lines: string[] = [];
  for (const account of accounts) {
    const create = (await query(host, mysql, `SHOW CREATE USER ${account};`, `SHOW CREATE USER ${account}`)).trim();
    lines.push(`${toReplaceableUser(create)};`);
    const grants = (await query(host, mysql, `SHOW GRANTS FOR ${account};`, `SHOW GRANTS FOR ${account}`)).split('\n').filter(Boolean);
    // The USAGE grant repeats the password clause; CREATE OR REPLACE USER already carried it.
    lines.push(...grants.filter((grant) => !/^GRANT USAGE ON \*\.\* TO/.test(grant)).map((grant) => `${grant};`));
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
