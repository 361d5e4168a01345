import { chown, mkdir, writeFile } from 'node:fs/promises';
import { LAB_TOOLS, SYSTEM_PATH } from './lab-paths.js';
import { runLabCommandChecked } from './lab-run.js';
import { lookupOsUser } from './lab-os-user.js';
import { ensureDataTemplate } from './lab-template.js';
import { probeConnect, spawnLabDaemon, waitForDaemon } from './lab-daemon.js';
import { LAB_ID_VARIABLE } from './lab-processes.js';
import type { LabPid } from './lab-types.js';

/** Server options every lab MariaDB shares: small and fast, since the data is throwaway. */
const MARIADB_LAB_OPTIONS = [
  '--innodb-buffer-pool-size=16M',
  '--innodb-log-file-size=8M',
  '--innodb-flush-log-at-trx-commit=0',
  '--innodb-doublewrite=0',
  '--skip-log-bin',
  '--skip-name-resolve',
  '--performance-schema=OFF',
] as const;

/**
 * Returns the cached mariadb-install-db'ed data dir, building it once. root@localhost logs in through
 * the unix socket as the OS root (unix_socket plugin); every other user is a real password user.
 */
export function ensureMariadbTemplate(): Promise<string> {
  return ensureDataTemplate('mariadb', MARIADB_LAB_OPTIONS.join(' '), async (dataDir) => {
    await runLabCommandChecked(
      [
        LAB_TOOLS.mariadbInstallDb,
        '--no-defaults',
        `--datadir=${dataDir}`,
        '--user=mysql',
        '--auth-root-authentication-method=socket',
        '--auth-root-socket-user=root',
        '--skip-test-db',
        ...MARIADB_LAB_OPTIONS,
      ],
      { env: { PATH: SYSTEM_PATH, LANG: 'C.UTF-8' }, cwd: '/' },
    );
  });
}

/** Where one host's MariaDB lives. */
export interface MariadbHostPaths {
  dataDir: string;
  runDir: string;
  socket: string;
  pidFile: string;
  logFile: string;
}

/**
 * Copies the template into the host dir and starts mariadbd on the host's address and socket (it
 * drops to the mysql user itself); resolves with its pid and start time once the socket accepts connections.
 */
export async function startLabMariadb(
  template: string,
  host: { address: string; mysqlPort: number },
  paths: MariadbHostPaths,
  labId: string,
): Promise<LabPid> {
  const user = lookupOsUser('mysql');
  await runLabCommandChecked(['cp', '-a', '--reflink=auto', template, paths.dataDir]);
  await mkdir(paths.runDir, { recursive: true, mode: 0o755 });
  await chown(paths.runDir, user.uid, user.gid);
  await writeFile(paths.logFile, '');
  await chown(paths.logFile, user.uid, user.gid);
  const daemon = spawnLabDaemon(
    [
      LAB_TOOLS.mariadbd,
      '--no-defaults',
      '--user=mysql',
      `--datadir=${paths.dataDir}`,
      `--socket=${paths.socket}`,
      `--pid-file=${paths.pidFile}`,
      `--log-error=${paths.logFile}`,
      `--bind-address=${host.address}`,
      `--port=${host.mysqlPort}`,
      ...MARIADB_LAB_OPTIONS,
    ],
    {
      logFile: paths.logFile,
      env: { PATH: SYSTEM_PATH, LANG: 'C.UTF-8', [LAB_ID_VARIABLE]: labId },
      cwd: paths.dataDir,
    },
  );
  // mariadbd opens its socket only after InnoDB and the grant tables are loaded.
  await waitForDaemon(daemon, `MariaDB on ${host.address}`, paths.logFile, () => probeConnect({ path: paths.socket }));
  return { pid: daemon.pid, startTime: daemon.startTime };
}
