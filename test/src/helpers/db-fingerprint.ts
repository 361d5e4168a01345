import type { Lab } from '@deploykit/testlab';
import { labShell, runOrThrow, type Shell } from './shell.js';

/** A database's content as a comparison sees it: every table's rows and every sequence's position. */
export interface DbFingerprint {
  database: string;
  /** Per table (`schema.table`): row count and the md5 of all its rows as text, in sorted order. */
  tables: Record<string, { rows: number; md5: string }>;
  /** Per sequence: `last_value:is_called`. */
  sequences: Record<string, string>;
  /** md5 over every column's table, name, type and default (schema drift shows here). */
  columnsMd5: string;
}

function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

const PSQL = "psql -X -q -At -v ON_ERROR_STOP=1 -F $'\\t'";

/**
 * Dumps row counts and row checksums of every user table of `database` through psql on the host
 * (the host's PGHOST/PGUSER: the lab's socket and superuser). Throws when psql fails.
 */
export async function dbFingerprint(lab: Lab, host: string, database: string): Promise<DbFingerprint>;
export async function dbFingerprint(shell: Shell, database: string): Promise<DbFingerprint>;
export async function dbFingerprint(first: Lab | Shell, second: string, third?: string): Promise<DbFingerprint> {
  const shell = 'run' in first ? first : labShell(first, second);
  const database = 'run' in first ? second : String(third);
  const psql = `${PSQL} -d ${quoteLiteral(database)}`;
  const listing = await runOrThrow(
    shell,
    psql,
    `SELECT c.relkind, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
        AND c.relkind IN ('r', 'p', 'S')
      ORDER BY 2;\n`,
  );
  const selects = [
    `SELECT 'columns', '', count(*)::text, md5(coalesce(string_agg(table_schema || '.' || table_name || '.' || column_name || ':' || data_type || ':' || coalesce(column_default, ''), ',' ORDER BY table_schema, table_name, ordinal_position), ''))
       FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`,
  ];
  for (const line of listing.split('\n')) {
    if (line === '') continue;
    const [kind, name] = line.split('\t') as [string, string];
    selects.push(
      kind === 'S'
        ? `SELECT 'sequence', ${quoteLiteral(name)}, last_value::text || ':' || is_called::text, '' FROM ${name}`
        : `SELECT 'table', ${quoteLiteral(name)}, count(*)::text, md5(coalesce(string_agg(row_text, E'\\n' ORDER BY row_text), '')) FROM (SELECT t::text AS row_text FROM ${name} t) rows`,
    );
  }
  const output = await runOrThrow(shell, psql, `${selects.join('\nUNION ALL\n')};\n`);
  const result: DbFingerprint = { database, tables: {}, sequences: {}, columnsMd5: '' };
  for (const line of output.split('\n')) {
    if (line === '') continue;
    const [kind, name, value, md5] = line.split('\t') as [string, string, string, string];
    if (kind === 'columns') result.columnsMd5 = `${value}:${md5}`;
    else if (kind === 'sequence') result.sequences[name] = value;
    else result.tables[name] = { rows: Number(value), md5 };
  }
  return result;
}
