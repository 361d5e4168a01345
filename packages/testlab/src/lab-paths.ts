import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DependencyError, quoteArgv } from '@deploykit/core';
import { fflStandinPath } from '@deploykit/ffl-standin';

/** Where the Debian packages put the tools the lab runs. */
export const LAB_TOOLS = {
  sshd: '/usr/sbin/sshd',
  sshKeygen: '/usr/bin/ssh-keygen',
  ssh: '/usr/bin/ssh',
  borg: '/usr/bin/borg',
  pgBin: '/usr/lib/postgresql/15/bin',
  mariadbd: '/usr/sbin/mariadbd',
  mariadbInstallDb: '/usr/bin/mariadb-install-db',
} as const;

/** The PATH a Debian root login gets, after the lab's own bin folders. */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Finds the deploykit repository root by walking up from this module to the package.json with
 * workspaces; throws DependencyError when the module does not live inside the repo.
 */
export function findRepoRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { workspaces?: unknown };
      if (Array.isArray(parsed.workspaces)) return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new DependencyError('LAB_NO_REPO', `no deploykit repository above ${start}`, {
        hint: 'Run the lab from a checkout of the deploykit repository.',
      });
    }
    dir = parent;
  }
}

/**
 * The PATH of every lab session: the repo's deploy bin folder (or, with `deployBin`, an installed
 * release's), the ffl stand-in's bin folder (@deploykit/ffl-standin), then the system PATH (or,
 * with `systemBin`, a host's own folder standing for it).
 */
export function buildLabPath(repoRoot: string, options: { deployBin?: string; systemBin?: string } = {}): string {
  return [
    options.deployBin ?? join(repoRoot, 'packages', 'deploy', 'bin'),
    dirname(fflStandinPath),
    options.systemBin ?? SYSTEM_PATH,
  ].join(':');
}

/** The lab's package manager for `deploy setup --install` (DEPLOY_SETUP_APT_GET on every host): records, installs nothing. */
export function labAptGetPath(repoRoot: string): string {
  return join(repoRoot, 'packages', 'testlab', 'bin', 'lab-apt-get');
}

/** The tools the lab needs that are not installed (absolute paths), given which servers it runs. */
export function listMissingLabTools(options: { postgres: boolean; mariadb: boolean }): string[] {
  const needed: string[] = [LAB_TOOLS.sshd, LAB_TOOLS.sshKeygen, LAB_TOOLS.ssh, LAB_TOOLS.borg];
  if (options.postgres) needed.push(join(LAB_TOOLS.pgBin, 'postgres'), join(LAB_TOOLS.pgBin, 'initdb'));
  if (options.mariadb) needed.push(LAB_TOOLS.mariadbd, LAB_TOOLS.mariadbInstallDb);
  return needed.filter((path) => !existsSync(path));
}

/** The lab dir `npm run lab` uses without --dir: `<repo>/.lab`. */
export function defaultLabDir(): string {
  return join(findRepoRoot(), '.lab');
}

/**
 * The shell command that stops the lab in `dir`: with `--dir` unless it is the default dir, since
 * `down` without it looks only there (and would answer "no lab" while this one keeps running).
 */
export function buildLabDownCommand(dir: string): string {
  let inDefaultDir = false;
  try {
    inDefaultDir = dir === defaultLabDir();
  } catch {
    // Not inside the repo (a lab started through the API): the dir must be named.
  }
  return quoteArgv(['npm', 'run', 'lab', '--', 'down', ...(inDefaultDir ? [] : ['--dir', dir])]);
}
