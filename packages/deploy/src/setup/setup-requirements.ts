/** What a host is set up for: the database kinds and transports of the apps it will run. */
export interface SetupNeeds {
  readonly postgres: boolean;
  readonly mariadb: boolean;
  readonly ffl: boolean;
}

/** One program a host needs, and how to get it. */
export interface ToolRequirement {
  /** The program looked up on the PATH of the host's ssh sessions (or, for servers, `path`). */
  readonly tool: string;
  /** Why deploy needs it (the NEEDED FOR column). */
  readonly why: string;
  /** The Debian/Ubuntu package that provides it; undefined when apt cannot install it (then `manual` says how). */
  readonly debianPackage?: string;
  readonly manual?: string;
  /** Servers are looked up at these absolute paths (globs), not on PATH. */
  readonly paths?: readonly string[];
}

/** The smallest Node the release runs on (package.json `engines`). */
export const MINIMUM_NODE = { major: 20, minor: 10 } as const;

/**
 * Every program `deploy` runs on a host, by the needs of its apps: the base set (backups, volumes and
 * the metadata export-tar drops, installing the release), then per database kind its client and
 * server, and ffl for the ffl transport and pairing mode. Debian package names (bookworm).
 */
export function listToolRequirements(needs: SetupNeeds): ToolRequirement[] {
  const tools: ToolRequirement[] = [
    { tool: 'npm', why: 'installs the deploy release', debianPackage: 'npm' },
    { tool: 'borg', why: 'backups, migration archives', debianPackage: 'borgbackup' },
    { tool: 'tar', why: 'volumes in a migration (GNU tar)', debianPackage: 'tar' },
    { tool: 'getfattr', why: 'extended attributes of volumes', debianPackage: 'attr' },
    { tool: 'setfattr', why: 'extended attributes of volumes', debianPackage: 'attr' },
    { tool: 'getfacl', why: 'ACLs of volumes', debianPackage: 'acl' },
    { tool: 'setfacl', why: 'ACLs of volumes', debianPackage: 'acl' },
    { tool: 'fallocate', why: 'sparse files of volumes', debianPackage: 'util-linux' },
    { tool: 'python3', why: 'file metadata of volumes', debianPackage: 'python3' },
  ];
  if (needs.postgres) {
    tools.push(
      { tool: 'psql', why: 'PostgreSQL apps', debianPackage: 'postgresql-client' },
      { tool: 'pg_dump', why: 'PostgreSQL apps', debianPackage: 'postgresql-client' },
      { tool: 'pg_restore', why: 'PostgreSQL apps', debianPackage: 'postgresql-client' },
      {
        tool: 'postgres',
        why: 'PostgreSQL server',
        debianPackage: 'postgresql',
        paths: ['/usr/lib/postgresql/*/bin/postgres'],
      },
    );
  }
  if (needs.mariadb) {
    tools.push(
      { tool: 'mysql', why: 'MariaDB apps', debianPackage: 'mariadb-client' },
      { tool: 'mysqldump', why: 'MariaDB apps', debianPackage: 'mariadb-client' },
      { tool: 'mariadbd', why: 'MariaDB server', debianPackage: 'mariadb-server', paths: ['/usr/sbin/mariadbd'] },
    );
  }
  if (needs.ffl)
    tools.push({
      tool: 'ffl',
      why: 'ffl transport, pairing mode',
      manual: 'install FastFileLink (docs/transports.md#ffl); it has no Debian package',
    });
  return tools;
}
