import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConflictError, UsageError } from '@deploykit/core';
import { buildLabDownCommand, buildLabPath, findRepoRoot, labAptGetPath } from './lab-paths.js';
import { buildHiddenToolsBin, installLabRelease } from './lab-release.js';
import { ensureLabTools } from './lab-setup.js';
import { pickLabAddresses } from './lab-addresses.js';
import { generateSshKey, startLabSshd } from './lab-sshd.js';
import { ensurePostgresTemplate, startLabPostgres } from './lab-postgres.js';
import { ensureMariadbTemplate, startLabMariadb } from './lab-mariadb.js';
import { buildDeployConfig, buildKnownHosts, buildSshConfig, buildSshdConfig } from './lab-files.js';
import { LAB_ID_VARIABLE } from './lab-processes.js';
import { FFL_STANDIN_ENV } from '@deploykit/ffl-standin';
import { readLabRecord, writeLabRecord } from './lab-record.js';
import { labStatus } from './lab-status.js';
import { stopRecordedLab } from './lab-stop.js';
import { createLabHandle } from './lab-handle.js';
import type { Lab, LabHost, LabHostPids, LabOptions, LabRecord } from './lab-types.js';

const MAX_HOSTS = 26;

/** Lab host names: index 0 is `a`, 1 is `b`, ... */
export function nameLabHost(index: number): string {
  return String.fromCharCode('a'.charCodeAt(0) + index);
}

/** Makes sure `dir` can take a new lab: absent, empty, or holding a dead lab (which is cleaned away first). */
async function prepareLabDir(dir: string): Promise<void> {
  const status = await labStatus(dir);
  if (status.state === 'running' || status.state === 'degraded') {
    throw new ConflictError('LAB_ALREADY_UP', `a lab (${status.record.id}) is already up in ${dir}`, {
      hint: `Stop it first: \`${buildLabDownCommand(dir)}\` (or stopLab(dir)).`,
    });
  }
  if (status.state === 'stopped') await stopRecordedLab({ ...status.record, dir, removeDir: true });
  await mkdir(dir, { recursive: true });
  const leftovers = await readdir(dir);
  if (leftovers.length > 0) {
    throw new ConflictError('LAB_DIR_NOT_EMPTY', `${dir} is not empty and holds no lab`, {
      hint: `Remove ${dir} or choose another dir.`,
    });
  }
}

/**
 * Starts a lab of `hosts` hosts (default 2): per host an sshd on its own loopback address, its own
 * root folder and PostgreSQL cluster (and MariaDB with `mariadb: true`). Writes ssh_config,
 * known_hosts, deploy.yaml and lab.json into the lab dir. Cleans up whatever it started when it fails
 * halfway. Throws UsageError for bad options, ConflictError when the dir holds a live lab,
 * DependencyError when a tool is missing or a server does not come up.
 */
export async function startLab(options: LabOptions = {}): Promise<Lab> {
  const hostCount = options.hosts ?? 2;
  if (!Number.isInteger(hostCount) || hostCount < 1 || hostCount > MAX_HOSTS) {
    throw new UsageError('LAB_HOST_COUNT', `a lab has 1 to ${MAX_HOSTS} hosts, not ${hostCount}`, {
      hint: 'Pass hosts: 2 (the default) or another count up to 26.',
    });
  }
  if (options.fflTimeScale !== undefined && !(Number.isFinite(options.fflTimeScale) && options.fflTimeScale >= 0)) {
    throw new UsageError(
      'LAB_FFL_TIME_SCALE',
      `fflTimeScale must be a non-negative number, not ${options.fflTimeScale}`,
      { hint: 'Pass 0 (no added delays), 1 (real timings) or a factor in between.' },
    );
  }
  const withPostgres = options.postgres ?? true;
  const withMariadb = options.mariadb ?? false;
  const repoRoot = findRepoRoot();
  await ensureLabTools(repoRoot, { postgres: withPostgres, mariadb: withMariadb });

  let dir: string;
  if (options.dir === undefined) {
    dir = await mkdtemp(join(tmpdir(), 'deploykit-lab-'));
  } else {
    dir = resolve(options.dir);
    await prepareLabDir(dir);
  }
  // Server users (postgres, mysql) need to traverse into the host dirs.
  await chmod(dir, 0o755);

  const id = `lab-${randomBytes(5).toString('hex')}`;
  const plan = await pickLabAddresses(hostCount, { mysql: withMariadb });
  const keysDir = join(dir, 'keys');
  const paths = {
    clientKey: join(keysDir, 'id_ed25519'),
    knownHosts: join(dir, 'known_hosts'),
    sshConfig: join(dir, 'ssh_config'),
    deployConfig: join(dir, 'deploy.yaml'),
  };
  for (const name of Object.keys(options.hideTools ?? {})) {
    if (!Array.from({ length: hostCount }, (_, index) => nameLabHost(index)).includes(name)) {
      throw new UsageError(
        'LAB_HIDE_TOOLS_HOST',
        `hideTools names host ${name}, and the lab has ${hostCount} host(s)`,
        { hint: 'Name hosts a, b, ... up to the host count.' },
      );
    }
  }
  const hosts: (LabHost & { pids: LabHostPids })[] = plan.addresses.map((address, index) => {
    const name = nameLabHost(index);
    const root = join(dir, name);
    const deployPrefix = options.release === undefined ? undefined : join(root, 'deploykit');
    const systemBin = (options.hideTools?.[name] ?? []).length > 0 ? join(root, 'sysbin') : undefined;
    const host: LabHost & { pids: LabHostPids } = {
      name,
      address,
      sshPort: plan.sshPort,
      root,
      appsRoot: join(root, 'apps'),
      authorizedKeysPath: join(root, 'keys', 'authorized_keys'),
      stateDir: join(root, 'state'),
      pgSocketDir: withPostgres ? join(root, 'pg', 'run') : '',
      pgPort: plan.pgPort,
      ...(withMariadb ? { mysqlSocket: join(root, 'mysql', 'run', 'mysqld.sock'), mysqlPort: plan.mysqlPort } : {}),
      env: {},
      ...(deployPrefix === undefined ? {} : { deployPrefix }),
      ...(systemBin === undefined ? {} : { systemBin }),
      pids: {},
    };
    host.env = {
      DEPLOY_HOST_NAME: name,
      DEPLOY_HOST_ADDRESS: address,
      DEPLOY_APPS_ROOT: host.appsRoot,
      DEPLOY_STATE_DIR: host.stateDir,
      DEPLOY_CONFIG: join(root, 'deploy.yaml'),
      [LAB_ID_VARIABLE]: id,
      PATH: buildLabPath(repoRoot, {
        ...(deployPrefix === undefined ? {} : { deployBin: join(deployPrefix, 'bin') }),
        ...(systemBin === undefined ? {} : { systemBin }),
      }),
      // deploy setup: where it installs deploy, and the package manager it runs (never the real apt-get in a lab).
      ...(deployPrefix === undefined ? {} : { DEPLOY_INSTALL_PREFIX: deployPrefix }),
      DEPLOY_SETUP_APT_GET: labAptGetPath(repoRoot),
      DEPLOY_LAB_APT_LOG: join(root, 'logs', 'apt-get.jsonl'),
      ...(systemBin === undefined ? {} : { DEPLOY_LAB_SYSBIN: systemBin }),
      // Its own HOME makes the host a separate machine for borg's cache and psql's history, and keeps
      // root's ~/.bashrc (which may prepend to PATH) out of lab sessions.
      HOME: join(root, 'home'),
      TMPDIR: join(root, 'tmp'),
      ...(withPostgres ? { PGHOST: host.pgSocketDir, PGPORT: String(plan.pgPort), PGUSER: 'postgres' } : {}),
      ...(host.mysqlSocket === undefined ? {} : { MYSQL_UNIX_PORT: host.mysqlSocket }),
      ...(options.fflTimeScale === undefined ? {} : { [FFL_STANDIN_ENV.timeScale]: String(options.fflTimeScale) }),
    };
    return host;
  });
  const record: LabRecord = {
    version: 1,
    id,
    dir,
    createdAt: new Date().toISOString(),
    startedBy: process.pid,
    removeDir: options.removeDir ?? true,
    sshConfigPath: paths.sshConfig,
    deployConfigPath: paths.deployConfig,
    knownHostsPath: paths.knownHosts,
    clientKeyPath: paths.clientKey,
    hosts,
  };
  // Written before any server starts: if this process dies halfway, `down` still finds the lab id.
  await writeLabRecord(record);

  try {
    await mkdir(keysDir, { mode: 0o700 });
    const [clientPublicKey, postgresTemplate, mariadbTemplate] = await Promise.all([
      generateSshKey(paths.clientKey, `deploykit-${id}-client`),
      withPostgres ? ensurePostgresTemplate() : Promise.resolve(''),
      withMariadb ? ensureMariadbTemplate() : Promise.resolve(''),
      ...hosts.map(async (host) => {
        await createHostTree(host, withPostgres, withMariadb);
        if (host.systemBin !== undefined)
          await buildHiddenToolsBin(host.systemBin, options.hideTools?.[host.name] ?? []);
        if (options.release !== undefined && host.deployPrefix !== undefined)
          await installLabRelease(options.release, host.deployPrefix);
      }),
    ]);
    // Each host trusts the client key through a file of its own, so a test can take that trust away from one host.
    await Promise.all(hosts.map((host) => writeFile(host.authorizedKeysPath, `${clientPublicKey}\n`, { mode: 0o600 })));
    const hostKeys = await Promise.all(
      hosts.map((host) =>
        generateSshKey(join(host.root, 'keys', 'ssh_host_ed25519_key'), `deploykit-${id}-${host.name}`),
      ),
    );
    await writeFile(
      paths.knownHosts,
      buildKnownHosts(
        hosts.map((host, index) => ({ address: host.address, port: host.sshPort, publicKey: hostKeys[index] ?? '' })),
      ),
    );
    await writeFile(paths.sshConfig, buildSshConfig(hosts, paths));
    const deployConfig = buildDeployConfig(hosts, paths.sshConfig, id);
    await writeFile(paths.deployConfig, deployConfig);

    await Promise.all(
      hosts.map(async (host) => {
        // Each host sees the same lab-wide host map, so deploy on a host can name the others.
        await writeFile(host.env.DEPLOY_CONFIG ?? join(host.root, 'deploy.yaml'), deployConfig);
        const sshdConfig = join(host.root, 'sshd_config');
        await writeFile(
          sshdConfig,
          buildSshdConfig(host, {
            hostKey: join(host.root, 'keys', 'ssh_host_ed25519_key'),
            pidFile: join(host.root, 'sshd.pid'),
            authorizedKeys: host.authorizedKeysPath,
          }),
        );
        if (host.mysqlSocket !== undefined) {
          // /etc/mysql/my.cnf names the system socket, and option files beat MYSQL_UNIX_PORT; the
          // client reads ~/.my.cnf last, and HOME is the host's own.
          await writeFile(join(host.root, 'home', '.my.cnf'), `[client]\nsocket=${host.mysqlSocket}\n`);
        }
        const logs = join(host.root, 'logs');
        // Each server records its pid as soon as it is up, so a failure elsewhere still stops it.
        const servers: Promise<void>[] = [];
        if (withPostgres) {
          servers.push(
            startLabPostgres(
              postgresTemplate,
              host,
              {
                dataDir: join(host.root, 'pg', 'data'),
                socketDir: host.pgSocketDir,
                logFile: join(logs, 'postgres.log'),
              },
              id,
            ).then((ref) => {
              host.pids.postgres = ref;
            }),
          );
        }
        if (withMariadb && host.mysqlSocket !== undefined) {
          const runDir = join(host.root, 'mysql', 'run');
          servers.push(
            startLabMariadb(
              mariadbTemplate,
              { address: host.address, mysqlPort: plan.mysqlPort },
              {
                dataDir: join(host.root, 'mysql', 'data'),
                runDir,
                socket: host.mysqlSocket,
                pidFile: join(runDir, 'mysqld.pid'),
                logFile: join(logs, 'mariadb.log'),
              },
              id,
            ).then((ref) => {
              host.pids.mariadb = ref;
            }),
          );
        }
        servers.push(
          startLabSshd(sshdConfig, host, join(logs, 'sshd.log'), id).then((ref) => {
            host.pids.sshd = ref;
          }),
        );
        await settleAll(servers);
      }),
    );
    await writeLabRecord(record);
  } catch (error) {
    // Stop whatever came up (recorded pids and anything else carrying the lab id), then rethrow.
    // A temp dir goes too; a dir the caller chose keeps its logs for reading (the next up cleans it).
    await stopRecordedLab({ ...record, removeDir: options.dir === undefined }).catch(() => undefined);
    throw error;
  }
  return createLabHandle(record);
}

/** Like Promise.all, but waits for every promise before rethrowing the first failure (no server left unrecorded). */
async function settleAll(promises: readonly Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

async function createHostTree(host: LabHost, withPostgres: boolean, withMariadb: boolean): Promise<void> {
  const dirs = [
    'apps',
    'state',
    'borg',
    'logs',
    'keys',
    'home',
    'tmp',
    ...(withPostgres ? ['pg'] : []),
    ...(withMariadb ? ['mysql'] : []),
  ];
  await mkdir(host.root, { mode: 0o755 });
  await chmod(host.root, 0o755);
  await Promise.all(dirs.map((name) => mkdir(join(host.root, name), { mode: name === 'keys' ? 0o700 : 0o755 })));
  await chmod(join(host.root, 'tmp'), 0o1777);
}

/** Reopens the lab recorded in <dir>/lab.json as a Lab handle; undefined when there is none. */
export async function openLab(dir: string): Promise<Lab | undefined> {
  const record = await readLabRecord(resolve(dir));
  return record === undefined ? undefined : createLabHandle(record);
}
