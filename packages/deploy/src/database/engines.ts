import type { AppFolder, AppManifest } from '@deploykit/core';
import type { DatabaseEngine } from './engine.js';
import { mariadbEngine } from './mariadb.js';
import { postgresEngine } from './postgres.js';

/** The engine of a manifest's database kind; undefined for `none`. */
export function engineFor(manifest: AppManifest): DatabaseEngine | undefined {
  switch (manifest.database.kind) {
    case 'postgres':
      return postgresEngine;
    case 'mysql':
    case 'mariadb':
      return mariadbEngine;
    default:
      return undefined;
  }
}

/** The engine of a kind as a run record names it. */
export function engineOfKind(kind: DatabaseEngine['kind'] | undefined): DatabaseEngine | undefined {
  return kind === 'postgres' ? postgresEngine : kind === 'mariadb' ? mariadbEngine : undefined;
}

/** The engine of an app's database; undefined when it has none. */
export function engineOfApp(app: AppFolder): DatabaseEngine | undefined {
  return engineFor(app.manifest);
}
