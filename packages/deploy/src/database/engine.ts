import type { Transform } from 'node:stream';
import type { SqlClient } from './sql-client.js';

/** Which part of an app's roles SQL: accounts (and grants that need no table), or the grants on objects. */
export type RolesSqlPart = 'users' | 'grants' | 'all';

/** The consumer restoring a database part on the target, under its staging name. */
export interface RestoreConsumer {
  readonly argv: readonly string[];
  /** A filter between the stream and the consumer (MariaDB: the dump names its database itself). */
  readonly filter?: () => Transform;
}

/**
 * One database engine, borgmatic-style: everything deploy does with a kind of database server, so
 * a new kind is one new file. Commands are data (argv builders); operations take an SqlClient (the
 * admin client with SQL on stdin), so a caller decides where and how they run.
 */
export interface DatabaseEngine {
  readonly kind: 'postgres' | 'mariadb';
  /** Programs each side needs for a migration of this engine's database. */
  tools(options: { liveDump: boolean }): { readonly source: readonly string[]; readonly target: readonly string[] };
  /** The admin client argv (SQL on stdin) against `database`, or the server's admin database. */
  clientArgv(database?: string): string[];
  /** Path of the dump inside an app's Borg archive (the archive contract, docs/app-folder.md). */
  archivedDumpPath(database: string): string;
  /** The live dump producer, when the archive holds no dump. */
  liveDumpArgv(database: string): string[];
  /** The consumer restoring a dump under `staging` (the dump itself names `final`). */
  restoreConsumer(staging: string, final: string): RestoreConsumer;
  /**
   * Database-level settings a plain restore into another name would lose (PostgreSQL: CREATE
   * DATABASE options, owner, comment, ALTER DATABASE SET, grants on the database), read from a
   * dump's table of contents by `readToc`; undefined when the engine's dump carries them itself.
   */
  readonly settings?: DatabaseSettingsSupport;

  /** True when the database exists. */
  databaseExists(client: SqlClient, database: string): Promise<boolean>;
  /** Bytes the database takes on the server (a space estimate). */
  databaseBytes(client: SqlClient, database: string): Promise<number>;
  /** Exact row count of every table (`schema.table` for PostgreSQL, `table` for MariaDB). */
  countRows(client: SqlClient, database: string): Promise<Record<string, number>>;
  /** Creates the (empty) staging database a restore goes into, when the engine needs it made first. */
  createStaging(client: SqlClient, staging: string, settingsSql?: string): Promise<void>;
  /** Moves a database to a free name (PostgreSQL: rename; MariaDB: every object into a new schema). */
  moveDatabase(client: SqlClient, from: string, to: string): Promise<void>;
  /** Applies what `createStaging` could not (settings naming the database) once it has its final name. */
  finishDatabase(client: SqlClient, database: string, settingsSql?: string): Promise<void>;
  /** Drops a database (connections are closed first). */
  dropDatabase(client: SqlClient, database: string): Promise<void>;

  /** SQL recreating the named roles/users (with password verifiers, never passwords) on another server. */
  exportRolesSql(client: SqlClient, roles: readonly string[], part: RolesSqlPart): Promise<string>;
  /** The accounts that exist for these role names (PostgreSQL: the names; MariaDB: 'user'@'host'). */
  listAccounts(client: SqlClient, roles: readonly string[]): Promise<string[]>;
  /** Creates bare, login-less roles for names that do not exist, so a restore can give them objects; returns the ones made. */
  createMissingRoles(client: SqlClient, roles: readonly string[]): Promise<string[]>;
  /** Drops accounts (as listAccounts names them); used to undo what a run created. */
  dropAccounts(client: SqlClient, accounts: readonly string[]): Promise<void>;
}

/** PostgreSQL's database-level settings, carried beside the dump (see DatabaseEngine.settings). */
export interface DatabaseSettingsSupport {
  /** Producer argv lists: the TOC listing and the settings SQL of a dump read from stdin. */
  tocArgv(): string[];
  /** Keeps the TOC lines of database-level entries. */
  filterToc(toc: string): string;
  /** Renders the SQL of the kept entries (`-L list`) from the dump on stdin. */
  settingsArgv(listFile: string): string[];
}
