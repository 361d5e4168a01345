import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppFolder, Host } from '@deploykit/core';
import { engineOfApp } from '../database/engines.js';
import { createSqlClient } from '../database/sql-client.js';

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

/** Per-table row counts of the app's database on the host it runs on; undefined when it has none. */
export async function countTables(app: AppFolder, host: Host): Promise<DatabaseFacts | undefined> {
  const engine = engineOfApp(app);
  const { kind, name } = app.manifest.database;
  if (engine === undefined || !name) return undefined;
  try {
    return { kind, name, tables: await engine.countRows(createSqlClient(host, engine.clientArgv), name) };
  } catch (error) {
    return { kind, name, tables: {}, error: (error as Error).message.slice(-300) };
  }
}

/** Collects an app's facts on the host it runs on: per-volume file count and bytes, per-table row counts. */
export async function collectAppFacts(app: AppFolder, host: Host): Promise<AppFacts> {
  const volumes: VolumeFacts[] = [];
  for (const volume of app.manifest.volumes) {
    try {
      volumes.push({ name: volume.name, path: volume.path, ...(await countVolume(join(app.dir, volume.path))) });
    } catch (error) {
      volumes.push({
        name: volume.name,
        path: volume.path,
        files: 0,
        bytes: 0,
        error: (error as NodeJS.ErrnoException).code ?? String(error),
      });
    }
  }
  const database = await countTables(app, host);
  const logFiles = (app.manifest.health?.checks ?? []).flatMap((check) => (check.type === 'logs' ? check.files : []));
  return { app: app.name, volumes, ...(database ? { database } : {}), logFiles };
}
