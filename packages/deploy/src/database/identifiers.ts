import { ConfigError, DATABASE_IDENTIFIER_RULE, isDatabaseIdentifier } from '@deploykit/core';

/** Refuses names that are not plain identifiers (they end up in SQL text); `deploy validate` applies the same rule. */
export function checkIdentifier(kind: string, name: string): string {
  if (!isDatabaseIdentifier(name)) {
    throw new ConfigError('DB_IDENTIFIER_INVALID', `${kind} name "${name}" is not a plain identifier`, {
      hint: `A name must ${DATABASE_IDENTIFIER_RULE}.`,
    });
  }
  return name;
}

/** A single-quoted SQL string literal (standard quoting: both engines accept it for our names). */
export function sqlLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** A PostgreSQL identifier, always double-quoted. */
export function quotePgIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A MariaDB identifier, always backquoted. */
export function quoteMysqlIdentifier(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/**
 * The name of a database a migration run owns on the target: `dk_<run id>_<role>`, lower case
 * (the run id is how leftovers are found again), at most 63 characters for PostgreSQL.
 */
export function runDatabaseName(runId: string, role: 'stage' | 'aside'): string {
  return `dk_${runId.toLowerCase().replace(/[^a-z0-9]/g, '_')}_${role}`.slice(0, 63);
}
