import { posix } from 'node:path';
import { ConflictError, DependencyError, formatBytes, type AppFolder, type Host, type TransportName } from '@deploykit/core';
import type { HostContext } from '../host-context.js';
import { buildBorgEnv } from './borg-env.js';
import { archivedDumpPath, buildDatabaseExistsArgv, databaseEngine } from './database-commands.js';
import { isFidelityTrivial, scanFidelity, type FidelityMetadata } from './fidelity.js';
import { collectHostFacts, type HostFacts } from './host-facts.js';

/** What preflight learnt; the plan is built from it. */
export interface PreflightResult {
  readonly source: HostFacts;
  readonly target: HostFacts;
  readonly borgEnv: Record<string, string>;
  readonly latestArchive: string | null;
  readonly archiveHasDump: boolean;
  readonly fidelity: Record<string, FidelityMetadata>;
  readonly volumeBytes: Record<string, number>;
  readonly neededBytes: number;
  readonly targetDatabaseExists: boolean;
  readonly notes: string[];
}

/** Margin kept free on the target beyond the data itself. */
export const SPACE_MARGIN_BYTES = 64 * 1024 * 1024;

function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new DependencyError('PREFLIGHT_BAD_ANSWER', `${what} did not answer JSON: ${text.slice(0, 200)}`);
  }
}

/** Which tools each side needs for this app and transport. */
export function requiredTools(app: AppFolder, transport: TransportName, options: { withHistory: boolean; fidelity: boolean; archiveHasDump: boolean }): { source: string[]; target: string[] } {
  const engine = databaseEngine(app);
  const source = ['borg', 'tar'];
  const target = ['tar'];
  if (engine === 'postgres') {
    source.push('psql');
    if (!options.archiveHasDump) source.push('pg_dump');
    target.push('psql', 'pg_restore');
  } else if (engine === 'mariadb') {
    source.push('mysql');
    if (!options.archiveHasDump) source.push('mysqldump');
    target.push('mysql');
  }
  if (options.withHistory) target.push('borg');
  if (options.fidelity) target.push('setfattr', 'getfattr', 'fallocate');
  if (transport === 'ffl') {
    source.push('ffl');
    target.push('ffl');
  }
  if (transport === 'scp') source.push('scp');
  return { source, target };
}

async function sizeOf(host: Host, dir: string): Promise<number> {
  const result = await host.run({ argv: ['du', '-sb', '--', dir] });
  return Number(result.stdout.split('\t')[0] ?? 0) || 0;
}

/**
 * Checks, before anything changes, that a migration can work: target reachable, versions
 * compatible, tools present on both sides, enough free space on the target (numbers from the
 * latest archive, else the volumes), the app folder and database absent there (or left by an
 * unfinished migration of ours), and what export-tar would lose found on the source volumes.
 */
export async function runPreflight(options: {
  app: AppFolder;
  source: HostContext;
  localHost: Host;
  targetHost: Host;
  remoteDeploy: readonly string[];
  transport: TransportName;
  withHistory: boolean;
  replace: boolean;
}): Promise<PreflightResult> {
  const { app, localHost, targetHost } = options;
  const notes: string[] = [];
  const answer = await targetHost.run({ argv: [...options.remoteDeploy, 'receive', 'preflight', app.name, '--json', '--quiet'], timeoutMs: 60_000 });
  if (answer.exitCode === 255) {
    throw new DependencyError('TARGET_UNREACHABLE', `cannot reach ${targetHost.name} over ssh: ${answer.stderr.trim().split('\n').pop() ?? ''}`, { hint: `Check that \`ssh\` to ${targetHost.name} works (keys, known_hosts, sshd).` });
  }
  if (answer.exitCode === 127 || /deploy: (command )?not found/.test(answer.stderr)) {
    throw new DependencyError('TARGET_NO_DEPLOY', `deploy is not installed on ${targetHost.name}`, { hint: 'Install deploykit there (the same version) and put `deploy` on the PATH of the ssh user.' });
  }
  if (answer.exitCode !== 0) throw new DependencyError('TARGET_PREFLIGHT_FAILED', `preflight on ${targetHost.name} failed: ${answer.stderr.trim()}`);
  const target = parseJson<HostFacts>(answer.stdout, `deploy receive preflight on ${targetHost.name}`);
  const source = await collectHostFacts(options.source, app.name);
  const [sourceMajor, sourceMinor] = source.deployVersion.split('.');
  const [targetMajor, targetMinor] = target.deployVersion.split('.');
  if (sourceMajor !== targetMajor || sourceMinor !== targetMinor) {
    throw new DependencyError('DEPLOY_VERSION_MISMATCH', `deploy ${source.deployVersion} here, ${target.deployVersion} on ${targetHost.name}`, { hint: 'Install the same deploykit version on both hosts.' });
  }

  const borgEnv = await buildBorgEnv(app, options.source);
  const last = await localHost.run({ argv: ['borg', 'list', '--short', '--last', '1'], env: borgEnv });
  const latestArchive = last.exitCode === 0 ? last.stdout.trim() || null : null;
  let archiveHasDump = false;
  const volumeBytes: Record<string, number> = {};
  if (latestArchive) {
    const dump = archivedDumpPath(app);
    const listed = await localHost.run({ argv: ['borg', 'list', '--short', `::${latestArchive}`, dump], env: borgEnv });
    archiveHasDump = listed.exitCode === 0 && listed.stdout.split('\n').includes(dump);
  } else notes.push('no archive yet: sizes come from the volumes on disk; the backup step makes the first archive');
  for (const volume of app.manifest.volumes) volumeBytes[volume.name] = await sizeOf(localHost, posix.join(app.dir, volume.path));
  if (databaseEngine(app) !== 'none' && !latestArchive) archiveHasDump = true; // the app's bin/backup puts it there (archive contract)

  const fidelity: Record<string, FidelityMetadata> = {};
  for (const volume of app.manifest.volumes) {
    const scanned = await scanFidelity(localHost, posix.join(app.dir, volume.path));
    fidelity[volume.name] = scanned;
    if (!isFidelityTrivial(scanned)) {
      notes.push(`volume ${volume.name}: borg export-tar would drop ${scanned.xattrFiles} files' xattrs, ${scanned.aclFiles} ACLs, clamp ${scanned.lateMtimes.length} mtimes after 2038 and fill ${scanned.sparseFiles.length} sparse files; a metadata side channel carries them`);
    }
  }

  const tools = requiredTools(app, options.transport, { withHistory: options.withHistory, fidelity: Object.values(fidelity).some((f) => !isFidelityTrivial(f)), archiveHasDump });
  const missing = [
    ...tools.source.filter((tool) => !source.tools[tool]).map((tool) => `${tool} on the source (${source.hostName})`),
    ...tools.target.filter((tool) => !target.tools[tool]).map((tool) => `${tool} on ${targetHost.name}`),
  ];
  if (missing.length > 0) {
    throw new DependencyError('TOOLS_MISSING', `missing tools: ${missing.join(', ')}`, { hint: 'Install them (Debian: borgbackup, tar, postgresql-client, mariadb-client, attr, acl, util-linux) and run migrate again.' });
  }

  const appFiles = await sizeOf(localHost, app.dir);
  const neededBytes = Math.max(appFiles, Object.values(volumeBytes).reduce((a, b) => a + b, 0)) + (await databaseBytes(localHost, app));
  if (target.freeBytes < neededBytes + SPACE_MARGIN_BYTES) {
    throw new DependencyError('TARGET_SPACE', `${targetHost.name} has ${formatBytes(target.freeBytes)} free in ${target.appsRoot}, the app needs ${formatBytes(neededBytes)} (+${formatBytes(SPACE_MARGIN_BYTES)} margin)`, {
      hint: 'Free space on the target or choose another target host.',
      details: { freeBytes: target.freeBytes, neededBytes },
    });
  }
  if (target.app.exists && !options.replace && target.app.unfinishedRun === null) {
    throw new ConflictError('TARGET_APP_EXISTS', `${target.app.dir} already exists on ${targetHost.name}`, { hint: 'Choose a host without this app, or pass --replace (the old folder is swapped out only after everything arrived).' });
  }
  let targetDatabaseExists = false;
  if (databaseEngine(app) !== 'none') {
    const exists = await targetHost.run({ argv: buildDatabaseExistsArgv(app) });
    targetDatabaseExists = exists.exitCode === 0 && exists.stdout.trim() === '1';
    if (targetDatabaseExists && target.app.unfinishedRun === null) {
      throw new ConflictError('TARGET_DATABASE_EXISTS', `database ${app.manifest.database.name ?? app.name} already exists on ${targetHost.name}`, {
        hint: 'Migrate needs the target without it (it restores the dump with its own CREATE DATABASE). Drop it there if it is not needed, or choose another host.',
      });
    }
    if (targetDatabaseExists) notes.push(`database left by the unfinished run ${target.app.unfinishedRun} on ${targetHost.name} is dropped first`);
  }
  return { source, target, borgEnv, latestArchive, archiveHasDump, fidelity, volumeBytes, neededBytes, targetDatabaseExists, notes };
}

async function databaseBytes(host: Host, app: AppFolder): Promise<number> {
  const name = app.manifest.database.name;
  if (!name) return 0;
  const engine = databaseEngine(app);
  const argv =
    engine === 'postgres'
      ? ['psql', '-X', '-At', '--no-password', '-d', 'postgres', '-c', `SELECT pg_database_size('${name.replace(/'/g, "''")}')`]
      : engine === 'mariadb'
        ? ['mysql', '--batch', '--skip-column-names', '-e', `SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = '${name.replace(/'/g, "''")}'`]
        : undefined;
  if (!argv) return 0;
  const result = await host.run({ argv });
  return Number(result.stdout.trim()) || 0;
}
