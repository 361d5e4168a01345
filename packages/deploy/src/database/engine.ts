import type { SqlClient } from './sql-client.js';

/** Which part of an app's roles SQL: accounts (and grants that need no table), or the grants on objects. */
export type RolesSqlPart = 'users' | 'grants' | 'all';

/** An extension one of the app's roles owns on the source, which that role creates on the target before the restore. */
export interface ExtensionOwner {
  readonly name: string;
  readonly schema: string;
  readonly owner: string;
}

/** The consumer restoring a database part on the target, under its staging name. */
export interface RestoreConsumer {
  readonly argv: readonly string[];
}

/**
 * How a database is kept invisible until it is proven. `rename` (PostgreSQL): restored under a staging
 * name, renamed into place at the commit; a replaced database is renamed aside. `dump-file` (MariaDB,
 * which cannot rename a database and whose triggers and routines may name their own schema): the dump
 * is held as a file in staging until its part verified and restored under its own name at the commit;
 * a replaced database is kept aside as a dump file.
 */
export type DatabaseStaging =
  | {
      readonly kind: 'rename';
      /**
       * Creates the (empty) staging database a restore goes into; in it, each of `extensions` is created by
       * its owner (the dump records no extension owner; the restore then finds it there and leaves it).
       */
      createStaging(
        client: SqlClient,
        staging: string,
        settingsSql?: string,
        extensions?: readonly ExtensionOwner[],
      ): Promise<void>;
      /** The consumer restoring a dump into `staging`. */
      restoreConsumer(staging: string): RestoreConsumer;
      /** Applies, inside the restored staging database, what the dump could not express (the source's exportObjectFixups). */
      fixRestored?(client: SqlClient, staging: string, fixupsSql: string): Promise<void>;
      /** Renames a database to a free name (connections are closed first). */
      moveDatabase(client: SqlClient, from: string, to: string): Promise<void>;
      /** Applies what the staging database could not have (settings naming the database) under its final name. */
      finishDatabase(client: SqlClient, database: string, settingsSql?: string): Promise<void>;
    }
  | {
      readonly kind: 'dump-file';
      /** The client restoring a dump (on its stdin) under the name the dump gives. */
      restoreArgv(): string[];
      /** The dump of a database as it is (a replaced one, kept aside as a file). */
      asideDumpArgv(database: string): string[];
    };

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
  /** How a restored database stays invisible until proven (see DatabaseStaging). */
  readonly staging: DatabaseStaging;
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
  /** Drops a database (connections are closed first). */
  dropDatabase(client: SqlClient, database: string): Promise<void>;

  /** SQL recreating the named roles/users (with password verifiers, never passwords) on another server. */
  exportRolesSql(client: SqlClient, roles: readonly string[], part: RolesSqlPart): Promise<string>;
  /**
   * SQL (from the source's live database) for what the engine's dump leaves out and `staging.fixRestored`
   * applies in the restored database (PostgreSQL: explicit owner-default ACLs).
   */
  exportObjectFixups?(client: SqlClient, database: string): Promise<string>;
  /**
   * The extensions not owned by a superuser in the source's live `database`: those `staging.createStaging`
   * can have their owner create before the restore, and a note for each other one (which arrives owned
   * by the target's admin) saying why. Read by the source preflight, before any byte moves.
   */
  readExtensionOwners?(
    client: SqlClient,
    database: string,
    roles: readonly string[],
  ): Promise<{ extensions: ExtensionOwner[]; notes: string[] }>;
  /** The accounts that exist for these role names (PostgreSQL: the names; MariaDB: 'user'@'host'). */
  listAccounts(client: SqlClient, roles: readonly string[]): Promise<string[]>;
  /** Creates bare, login-less roles for names that do not exist, so a restore can give them objects; returns the ones made. */
  createMissingRoles(client: SqlClient, roles: readonly string[]): Promise<string[]>;
  /** Drops accounts (as listAccounts names them); used to undo what a run created. */
  dropAccounts(client: SqlClient, accounts: readonly string[]): Promise<void>;
  /**
   * What ties these accounts to anything but `database` (objects owned or privileges held in other
   * databases, other roles that are members of them): account -> reasons. `deploy remove` keeps
   * such an account rather than break what uses it.
   */
  accountsUsedElsewhere(
    client: SqlClient,
    accounts: readonly string[],
    database: string | undefined,
  ): Promise<Record<string, string[]>>;
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
