import { appendFile, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LAB_TOOLS, SYSTEM_PATH } from './lab-paths.js';
import { runLabCommandChecked } from './lab-run.js';
import { lookupOsUser } from './lab-os-user.js';
import { ensureDataTemplate } from './lab-template.js';
import { spawnLabDaemon, waitForDaemon } from './lab-daemon.js';
import { LAB_ID_VARIABLE } from './lab-processes.js';
import type { LabPid } from './lab-types.js';
import { POSTGRES_LAB_CONF, POSTGRES_LAB_HBA, buildPostgresHostConf } from './lab-files.js';

/**
 * initdb options of the lab template. 1 MB WAL segments instead of 16 MB make the cluster half the
 * size, and copying it is most of a lab host's start time.
 */
const INITDB_OPTIONS = [
  '-U',
  'postgres',
  '-E',
  'UTF8',
  '--no-locale',
  '--no-sync',
  '--no-instructions',
  '--auth-local=trust',
  '--auth-host=scram-sha-256',
  '--wal-segsize=1',
] as const;

/** Returns the cached initdb'ed PostgreSQL 15 data dir (lab settings and pg_hba included), building it once. */
export function ensurePostgresTemplate(): Promise<string> {
  const user = lookupOsUser('postgres');
  return ensureDataTemplate(
    'pg15',
    `${INITDB_OPTIONS.join(' ')}${POSTGRES_LAB_CONF}${POSTGRES_LAB_HBA}`,
    async (dataDir) => {
      await mkdir(dataDir, { mode: 0o700 });
      await chown(dataDir, user.uid, user.gid);
      await runLabCommandChecked([join(LAB_TOOLS.pgBin, 'initdb'), '-D', dataDir, ...INITDB_OPTIONS], {
        uid: user.uid,
        gid: user.gid,
        env: { PATH: SYSTEM_PATH, LANG: 'C.UTF-8' },
        cwd: '/',
      });
      await appendFile(join(dataDir, 'postgresql.conf'), POSTGRES_LAB_CONF);
      await writeFile(join(dataDir, 'pg_hba.conf'), POSTGRES_LAB_HBA);
    },
  );
}

/** Where one host's cluster lives. */
export interface PostgresHostPaths {
  dataDir: string;
  socketDir: string;
  logFile: string;
}

/**
 * Copies the template into the host's pg dir, points it at the host's address and socket dir and
 * starts `postgres` as the postgres user; resolves with the postmaster pid and start time once it accepts connections.
 */
export async function startLabPostgres(
  template: string,
  host: { address: string; pgPort: number; pgSocketDir: string },
  paths: PostgresHostPaths,
  labId: string,
): Promise<LabPid> {
  const user = lookupOsUser('postgres');
  // cp -a keeps the postgres ownership and 0700 mode the server insists on.
  await runLabCommandChecked(['cp', '-a', '--reflink=auto', template, paths.dataDir]);
  await appendFile(join(paths.dataDir, 'postgresql.conf'), buildPostgresHostConf(host));
  await mkdir(paths.socketDir, { recursive: true, mode: 0o755 });
  await chown(paths.socketDir, user.uid, user.gid);
  await writeFile(paths.logFile, '');
  await chown(paths.logFile, user.uid, user.gid);
  const daemon = spawnLabDaemon([join(LAB_TOOLS.pgBin, 'postgres'), '-D', paths.dataDir], {
    logFile: paths.logFile,
    env: { PATH: SYSTEM_PATH, LANG: 'C.UTF-8', [LAB_ID_VARIABLE]: labId },
    uid: user.uid,
    gid: user.gid,
    cwd: paths.dataDir,
  });
  // postmaster.pid line 8 turns to "ready" once connections are accepted; pg_ctl -w waits the same way.
  await waitForDaemon(daemon, `PostgreSQL on ${host.address}`, paths.logFile, async () => {
    try {
      const lines = (await readFile(join(paths.dataDir, 'postmaster.pid'), 'utf8')).split('\n');
      return lines[0]?.trim() === String(daemon.pid) && lines[7]?.trim() === 'ready';
    } catch {
      return false;
    }
  });
  return { pid: daemon.pid, startTime: daemon.startTime };
}
