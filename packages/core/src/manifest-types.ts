/**
 * The typed shape of an app.yaml after validation and defaulting. The JSON Schema in
 * packages/manifest/schema/app.schema.json is the single source; keep this in step with it.
 */
export type Runtime = 'process' | 'compose' | 'systemd';
export type DatabaseKind = 'postgres' | 'mysql' | 'mariadb' | 'none';
export type TransportName = 'ffl' | 'ssh' | 'scp' | 'local';
export type Phase =
  | 'install'
  | 'start'
  | 'stop'
  | 'backup'
  | 'restore'
  | 'migrate'
  | 'health'
  | 'update'
  | 'maintenance';

export interface VolumeSpec {
  /** Short name, referenced by checks (e.g. "uploads"). */
  readonly name: string;
  /** Path relative to the app folder. */
  readonly path: string;
  /** Device nodes and FIFOs the volume keeps, which migrate carries; any other one is refused. Defaults to []. */
  readonly special_files?: readonly SpecialFileSpec[];
  /** What `deploy cutover` does with the target copy's own writes since the migration: refuse (default) or discard (logs, caches). */
  readonly target_writes?: 'refuse' | 'discard';
}

/** What a declared special file is: a FIFO, a character device or a block device. */
export type SpecialFileType = 'fifo' | 'char' | 'block';

/** One device node or FIFO a volume declares (docs/app-folder.md: a device node is access to that device). */
export interface SpecialFileSpec {
  /** Path relative to the volume, without `.`, `..` or empty components. */
  readonly path: string;
  readonly type: SpecialFileType;
}

export interface DatabaseSpec {
  readonly kind: DatabaseKind;
  /** Database name. */
  readonly name?: string;
  /** Roles/users the app owns; migrated with their grants. */
  readonly roles?: readonly string[];
}

export interface BorgSpec {
  /** Repository path or URL; placeholders {app}, {state_dir}, {app_dir} are expanded. */
  readonly repository: string;
  /** Archive name pattern; {app} and {now} are expanded. */
  readonly archive: string;
  /** File (relative to the app folder) holding the repository passphrase; absent = unencrypted. */
  readonly passphrase_file?: string;
}

export interface HttpCheck {
  readonly name: string;
  readonly type: 'http';
  readonly path: string;
  readonly status?: number;
  readonly contains?: string;
  readonly not_contains?: string;
  readonly timeout_seconds?: number;
  readonly retries?: number;
}

export interface StaticCheck {
  readonly name: string;
  readonly type: 'static';
  /** Folder (relative to the app folder) whose files are served. */
  readonly root: string;
  /** URL prefix under which `root` is served. */
  readonly url_prefix: string;
  readonly files: readonly string[];
}

export interface UploadsCheck {
  readonly name: string;
  readonly type: 'uploads';
  readonly volume: string;
  readonly url_prefix: string;
  readonly sample?: number;
  /** Bytes of each sampled file read and hashed (a larger file: its size and the hash of that prefix). */
  readonly max_bytes?: number;
}

export interface DbPageCheck {
  readonly name: string;
  readonly type: 'db-page';
  readonly path: string;
  readonly contains: string;
}

export interface LoginCheck {
  readonly name: string;
  readonly type: 'login';
  readonly login_path: string;
  readonly protected_path: string;
  readonly username_field?: string;
  readonly password_field?: string;
  /** Secret file (relative) holding `username` and `password` as KEY=value lines. */
  readonly credentials_file: string;
  readonly expect: string;
}

export interface LogsCheck {
  readonly name: string;
  readonly type: 'logs';
  readonly files: readonly string[];
  readonly patterns: readonly string[];
}

export interface ProcessCheck {
  readonly name: string;
  readonly type: 'process';
  readonly pid_file?: string;
}

export type CheckSpec = HttpCheck | StaticCheck | UploadsCheck | DbPageCheck | LoginCheck | LogsCheck | ProcessCheck;

export interface HealthSpec {
  /** Base URL of the app on its host; placeholders {host_address} and {port}. */
  readonly base_url: string;
  readonly checks: readonly CheckSpec[];
}

export interface MigrateSpec {
  readonly transport: TransportName;
  readonly with_history: boolean;
  /** Migration archives the source keeps (absent: the global config's defaults.keep_migration_archives). */
  readonly keep_archives?: number;
}

export interface AppManifest {
  readonly name: string;
  readonly description?: string;
  readonly runtime: Runtime;
  /** TCP port the app listens on. */
  readonly port?: number;
  /** Non-secret environment passed to every bin/ script. */
  readonly env: Readonly<Record<string, string>>;
  readonly volumes: readonly VolumeSpec[];
  readonly database: DatabaseSpec;
  readonly borg?: BorgSpec;
  /** Config files (relative paths) carried to the target as they are. */
  readonly config: readonly string[];
  /** Secret files (relative paths), carried with mode 0600 and never logged. */
  readonly secrets: readonly string[];
  /** Per-phase script timeouts in seconds ("default" applies to the rest). */
  readonly timeouts: Readonly<Record<string, number>>;
  readonly health?: HealthSpec;
  readonly migrate: MigrateSpec;
}

/** An app folder found on disk, with its loaded manifest. */
export interface AppFolder {
  readonly name: string;
  /** Absolute path of the app folder. */
  readonly dir: string;
  /** Absolute path of its app.yaml. */
  readonly manifestPath: string;
  readonly manifest: AppManifest;
}
