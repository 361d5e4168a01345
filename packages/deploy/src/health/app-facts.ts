import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppFolder, Host } from '@deploykit/core';

/** File count and bytes of one volume (regular files, dotfiles skipped like the uploads sample). */
export interface VolumeFacts {
  readonly name: string;
  readonly path: string;
  readonly files: number;
  readonly bytes: number;
  /** Set when the folder could not be read. */
  readonly error?: string;
}

/** Row counts per table (`schema.table` for PostgreSQL, `table` for MySQL/MariaDB). */
export interface DatabaseFacts {
  readonly kind: string;
  readonly name: string;
  readonly tables: Readonly<Record<string, number>>;
  readonly error?: string;
}

/** What `deploy facts <app>` reports: the counts `deploy verify` compares between hosts. */
export interface AppFacts {
  readonly app: string;
  readonly volumes: readonly VolumeFacts[];
  readonly database?: DatabaseFacts;
  /** Files the app's logs checks scan: volumes holding them change while the app runs. */
  readonly logFiles: readonly string[];
}

/** Counts regular files and their bytes under dir, skipping dotfiles and dot folders (temp files of uploads). */
export async function countVolume(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const full = join(path, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        files += 1;
        bytes += (await lstat(full)).size;
      }
    }
  };
  await walk(dir);
  return { files, bytes };
}

/** The SQL (fed to psql on stdin) that counts the rows of every user table, one `name|count` line each. */
export const POSTGRES_ROW_COUNTS_SQL = `SELECT format('SELECT %L, count(*) FROM %I.%I', schemaname || '.' || tablename, schemaname, tablename)
  FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY schemaname, tablename
\\gexec
`;

/** Builds the psql argv that runs POSTGRES_ROW_COUNTS_SQL against a database as the host's admin (PGHOST/PGPORT/PGUSER). */
export function buildPostgresCountArgv(database: string): string[] {
  return ['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '--dbname', database];
}

/** Builds the mysql argv that runs one statement against a database (admin via MYSQL_UNIX_PORT / ~/.my.cnf). */
export function buildMysqlArgv(database: string, statement: string): string[] {
  return ['mysql', '--batch', '--skip-column-names', '--database', database, '--execute', statement];
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

/** Per-table row counts of the app's database on the host it runs on; undefined when it has none. */
export async function countTables(app: AppFolder, host: Host): Promise<DatabaseFacts | undefined> {
  const { kind, name } = app.manifest.database;
  if (kind === 'none' || !name) return undefined;
  if (kind === 'postgres') {
    const result = await host.run({ argv: buildPostgresCountArgv(name), input: POSTGRES_ROW_COUNTS_SQL, timeoutMs: 120_000, label: 'row counts' });
    if (result.exitCode !== 0) return { kind, name, tables: {}, error: `psql exit ${result.exitCode}: ${result.stderr.trim().slice(-300)}` };
    return { kind, name, tables: parseRowCounts(result.stdout, '|') };
  }
  const listed = await host.run({
    argv: buildMysqlArgv(name, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name"),
    timeoutMs: 60_000,
  });
  if (listed.exitCode !== 0) return { kind, name, tables: {}, error: `mysql exit ${listed.exitCode}: ${listed.stderr.trim().slice(-300)}` };
  const names = listed.stdout.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  if (names.length === 0) return { kind, name, tables: {} };
  // information_schema's table_rows is an estimate for InnoDB: count exactly.
  const statement = names.map((table) => `SELECT '${table.replace(/'/g, "''")}', COUNT(*) FROM \`${table.replace(/`/g, '``')}\``).join(' UNION ALL ');
  const counted = await host.run({ argv: buildMysqlArgv(name, statement), timeoutMs: 120_000 });
  if (counted.exitCode !== 0) return { kind, name, tables: {}, error: `mysql exit ${counted.exitCode}: ${counted.stderr.trim().slice(-300)}` };
  return { kind, name, tables: parseRowCounts(counted.stdout, '\t') };
}

/** Collects an app's facts on the host it runs on: per-volume file count and bytes, per-table row counts. */
export async function collectAppFacts(app: AppFolder, host: Host): Promise<AppFacts> {
  const volumes: VolumeFacts[] = [];
  for (const volume of app.manifest.volumes) {
    try {
      volumes.push({ name: volume.name, path: volume.path, ...(await countVolume(join(app.dir, volume.path))) });
    } catch (error) {
      volumes.push({ name: volume.name, path: volume.path, files: 0, bytes: 0, error: (error as NodeJS.ErrnoException).code ?? String(error) });
    }
  }
  const database = await countTables(app, host);
  const logFiles = (app.manifest.health?.checks ?? []).flatMap((check) => (check.type === 'logs' ? check.files : []));
  return { app: app.name, volumes, ...(database ? { database } : {}), logFiles };
}
