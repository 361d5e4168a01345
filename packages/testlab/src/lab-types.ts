/** One lab host: an sshd on its own loopback address with its own folders and database servers. */
export interface LabHost {
  /** Host name as used in ssh_config and deploy.yaml: `a`, `b`, `c`... */
  name: string;
  /** Its own loopback address, e.g. 127.23.181.2. */
  address: string;
  sshPort: number;
  /** The host's root folder; everything of this host lives below it. */
  root: string;
  appsRoot: string;
  stateDir: string;
  /** The public keys this host's sshd accepts (the lab's client key; a test may replace it). */
  authorizedKeysPath: string;
  /** Directory holding PostgreSQL's unix socket (PGHOST); empty when the lab runs without PostgreSQL. */
  pgSocketDir: string;
  pgPort: number;
  /** MariaDB's unix socket, present when the lab runs with `mariadb: true`. */
  mysqlSocket?: string;
  mysqlPort?: number;
  /** The environment every ssh session on this host gets (sshd `SetEnv`). */
  env: Record<string, string>;
  /** With `release`: the npm prefix the release is installed into (`<root>/deploykit`); its bin is first on PATH. */
  deployPrefix?: string;
  /** With `hideTools`: the host's own system bin folder (symlinks to the machine's programs minus the hidden ones). */
  systemBin?: string;
}

/** A running lab; disposing it (or calling down()) stops everything it started and removes its dir. */
export interface Lab extends AsyncDisposable {
  id: string;
  dir: string;
  hosts: LabHost[];
  /** `ssh -F <sshConfigPath> <name> -- cmd` reaches a host. */
  sshConfigPath: string;
  /** Global deploy config naming the hosts, for `deploy` on the controlling side (DEPLOY_CONFIG). */
  deployConfigPath: string;
  /** The host called `name`; throws UsageError for an unknown name. */
  host(name: string): LabHost;
  /** Runs `command` through the host's shell over ssh (with the lab's key, or `identity`); never throws for a non-zero exit. */
  ssh(hostName: string, command: string, opts?: { input?: string; identity?: string }): Promise<LabCommandResult>;
  down(): Promise<void>;
}

/** What a command run over ssh returned. */
export interface LabCommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Options of startLab. */
export interface LabOptions {
  /** Number of hosts (default 2, at most 26). */
  hosts?: number;
  /** Lab dir; default a fresh mkdtemp under os.tmpdir(). An existing dir must be empty or hold no live lab. */
  dir?: string;
  /** Start a MariaDB server per host (default false: it costs about a second per host). */
  mariadb?: boolean;
  /** Start a PostgreSQL cluster per host (default true). */
  postgres?: boolean;
  /** Remove the lab dir on down() (default true). */
  removeDir?: boolean;
  /**
   * `FFL_STANDIN_TIME_SCALE` in every host's environment (sshd SetEnv and deploy.yaml `env`), so the
   * ffl stand-in of every session adds its real delays times this (docs/ffl-standin.md). Tests that do
   * not test timing pass 0; unset (the default) means the real tool's timings, as `npm run demo` sees.
   */
  fflTimeScale?: number;
  /**
   * A deploykit release tarball (`npm run release`): each host gets it installed into its own npm
   * prefix (`<root>/deploykit`, `npm install -g --prefix`), and that prefix's bin on PATH instead of
   * the repo's packages/deploy/bin.
   */
  release?: string;
  /**
   * Programs a host lacks, by host name (e.g. `{ b: ['getfattr'] }`): its PATH then ends in a folder
   * of its own holding the system's programs minus these (docs/lab.md). The lab's apt-get stand-in
   * links a package's programs back into it.
   */
  hideTools?: Record<string, readonly string[]>;
}

/** A process the lab started: pid plus start time (clock ticks after boot), so a reused pid is never taken for it. */
export interface LabPid {
  pid: number;
  startTime: number;
}

/** The processes the lab started on one host, by role. */
export interface LabHostPids {
  sshd?: LabPid;
  postgres?: LabPid;
  mariadb?: LabPid;
}

/** lab.json: everything another process needs to stop or inspect the lab. */
export interface LabRecord {
  version: 1;
  id: string;
  dir: string;
  createdAt: string;
  /** PID of the process that started the lab (informational). */
  startedBy: number;
  removeDir: boolean;
  sshConfigPath: string;
  deployConfigPath: string;
  knownHostsPath: string;
  clientKeyPath: string;
  hosts: (LabHost & { pids: LabHostPids })[];
}

/** Liveness of one recorded lab process. */
export interface LabProcessStatus {
  host: string;
  role: keyof LabHostPids;
  pid: number;
  startTime: number;
  alive: boolean;
}

/** What labStatus() reports. */
export type LabStatus =
  | { state: 'absent'; dir: string }
  | {
      state: 'running' | 'degraded' | 'stopped';
      dir: string;
      record: LabRecord;
      processes: LabProcessStatus[];
      /**
       * Live processes carrying the lab id besides the recorded servers: server workers (postgres
       * backends), ssh sessions and apps started through them.
       */
      otherPids: number[];
    };
