import { join, posix } from 'node:path';
import type { AppFolder, EventBus, Host, TransportName } from '@deploykit/core';
import { expandPlaceholders } from '@deploykit/manifest';
import type { HostContext } from '../host-context.js';
import { resolveBorgRepo } from '../phase-env.js';
import {
  archivedDumpPath,
  buildDropDatabaseArgv,
  buildLiveDumpArgv,
  buildRestoreConsumerArgv,
  buildRolesConsumerArgv,
  databaseEngine,
} from './database-commands.js';
import type { FidelityMetadata } from './fidelity.js';
import type { HostFacts } from './host-facts.js';
import { migrationStagingApp } from './target-folder.js';

/** One stream of a migration: producer on the source, consumer on the target. */
export interface StreamStepSpec {
  readonly name: string;
  readonly producer: readonly string[];
  /** Environment of the producer (no secret values: borg reads its passphrase file itself). */
  readonly producerEnv: Readonly<Record<string, string>>;
  readonly consumer: { readonly kind: 'into'; readonly dir: string } | { readonly kind: 'command'; readonly argv: readonly string[] };
  readonly estimatedBytes?: number;
}

/** One step of a migration, as data: what `--plan` prints is what a run executes. */
export type MigrateStep =
  | { readonly id: string; readonly kind: 'lock'; readonly title: string; readonly argv: readonly string[] }
  | { readonly id: string; readonly kind: 'phase'; readonly title: string; readonly where: 'source' | 'target'; readonly phase: 'backup' | 'install' | 'start'; readonly argv: readonly string[] }
  | { readonly id: string; readonly kind: 'remote'; readonly title: string; readonly argv: readonly string[]; readonly input?: 'fidelity' }
  | { readonly id: string; readonly kind: 'stream'; readonly title: string; readonly stream: StreamStepSpec; readonly argv: readonly string[] }
  | { readonly id: string; readonly kind: 'verify'; readonly title: string; readonly argv: readonly string[] };

/** Everything the plan builder needs; it does no I/O itself. */
export interface PlanInput {
  readonly app: AppFolder;
  readonly source: HostContext;
  readonly target: { readonly name: string; readonly facts: HostFacts };
  readonly runId: string;
  readonly archive: string;
  readonly transport: TransportName;
  readonly withHistory: boolean;
  readonly replace: boolean;
  readonly borgEnv: Readonly<Record<string, string>>;
  /** Whether the app's archives hold the database dump (else a live dump is streamed). */
  readonly archiveHasDump: boolean;
  /** Per volume name: what export-tar would lose and must be carried beside it. */
  readonly fidelity: Readonly<Record<string, FidelityMetadata>>;
  readonly stallSeconds: number;
  readonly retries: number;
  /** The `deploy` command on this host (argv prefix) and the global config path, for child runs. */
  readonly deployCommand: readonly string[];
  /** The `deploy` command on the target (found on its PATH). */
  readonly remoteDeployCommand: readonly string[];
  readonly configPath?: string;
  readonly estimatedBytes: Readonly<Record<string, number>>;
  /** A database left on the target by an unfinished run of ours: dropped before the restore. */
  readonly dropLeftoverDatabase: boolean;
  /** The Borg repository path on the target (for --with-history). */
  readonly targetBorgRepo?: string;
}

/** What every step of a running migration may use: the plan, its inputs and both hosts. */
export interface MigrationContext {
  readonly plan: MigratePlan;
  readonly input: PlanInput;
  readonly app: AppFolder;
  readonly source: HostContext;
  readonly localHost: Host;
  readonly targetHost: Host;
  readonly bus: EventBus;
}

/** A migration plan: the ordered steps. */
export interface MigratePlan {
  readonly app: string;
  readonly runId: string;
  readonly archive: string;
  readonly transport: TransportName;
  readonly target: string;
  readonly steps: readonly MigrateStep[];
}

/** Builds the `deploy stream send` argv of a stream step (the CLI building block, docs/transports.md). */
export function buildStreamSendArgv(input: PlanInput, stream: StreamStepSpec): string[] {
  const argv = [...input.deployCommand, 'stream', 'send', '--to', input.target.name, '--transport', input.transport];
  argv.push('--name', stream.name, '--run-id', input.runId, '--producer', JSON.stringify(stream.producer));
  if (stream.consumer.kind === 'into') argv.push('--into', stream.consumer.dir);
  else argv.push('--consumer', JSON.stringify(stream.consumer.argv));
  argv.push('--stall-seconds', String(input.stallSeconds), '--retries', String(input.retries));
  if (stream.estimatedBytes !== undefined) argv.push('--estimated-bytes', String(stream.estimatedBytes));
  if (input.configPath) argv.push('--config', input.configPath);
  argv.push('--jsonl', '--quiet');
  return argv;
}

/** Paths of the app folder that are not carried by the files stream (volumes, build output, runtime leftovers). */
export function filesExcludes(app: AppFolder): string[] {
  const excludes = app.manifest.volumes.map((volume) => `./${posix.normalize(volume.path).replace(/\/$/, '')}`);
  return [...excludes, './node_modules', './app/node_modules', './db', './.state'];
}

/** Builds the whole migration as data. */
export function buildMigratePlan(input: PlanInput): MigratePlan {
  const { app, runId, target } = input;
  const remote = (words: readonly string[]): string[] => [...input.remoteDeployCommand, 'receive', ...words];
  const staging = migrationStagingApp({ ...input.source, appsRoot: target.facts.appsRoot, stateDir: target.facts.stateDir }, app.name, runId);
  const steps: MigrateStep[] = [];
  const stream = (id: string, title: string, spec: StreamStepSpec): void => {
    steps.push({ id, kind: 'stream', title, stream: spec, argv: buildStreamSendArgv(input, spec) });
  };
  steps.push({ id: 'lock', kind: 'lock', title: `lock ${app.name} on both hosts`, argv: remote(['lock', app.name, '--run-id', runId]) });
  steps.push({ id: 'backup', kind: 'phase', where: 'source', phase: 'backup', title: `fresh Borg archive ${input.archive} on the source (bin/backup)`, argv: [join(app.dir, 'bin', 'backup')] });
  steps.push({
    id: 'prepare',
    kind: 'remote',
    title: `prepare a staging app folder on ${target.name}`,
    argv: remote(['prepare', app.name, '--run-id', runId, ...(input.replace ? ['--replace'] : [])]),
  });
  stream('files', 'app folder: manifest, service definition, bin/, config, secrets (0600 kept)', {
    name: 'files',
    producer: ['tar', '-c', '--numeric-owner', '-C', app.dir, ...filesExcludes(app).map((path) => `--exclude=${path}`), '.'],
    producerEnv: {},
    consumer: { kind: 'into', dir: staging },
  });
  for (const volume of app.manifest.volumes) {
    const path = posix.normalize(volume.path).replace(/\/$/, '');
    stream(`volume:${volume.name}`, `volume ${volume.name} (${path}) from archive ${input.archive}`, {
      name: `volume-${volume.name}`,
      producer: ['borg', 'export-tar', `--strip-components=${path.split('/').length}`, `::${input.archive}`, '-', path],
      producerEnv: input.borgEnv,
      consumer: { kind: 'into', dir: posix.join(staging, path) },
      ...(input.estimatedBytes[volume.name] !== undefined ? { estimatedBytes: input.estimatedBytes[volume.name]! } : {}),
    });
    const fidelity = input.fidelity[volume.name];
    if (fidelity && (fidelity.xattrDump.trim() !== '' || fidelity.lateMtimes.length > 0 || fidelity.sparseFiles.length > 0)) {
      steps.push({
        id: `metadata:${volume.name}`,
        kind: 'remote',
        title: `carry what export-tar drops in ${volume.name}: ${fidelity.xattrFiles} files with xattrs, ${fidelity.aclFiles} with ACLs, ${fidelity.lateMtimes.length} mtimes after 2038, ${fidelity.sparseFiles.length} sparse files`,
        argv: remote(['apply-metadata', '--dir', posix.join(staging, path)]),
        input: 'fidelity',
      });
    }
  }
  const engine = databaseEngine(app);
  if (engine !== 'none' && input.dropLeftoverDatabase) {
    steps.push({ id: 'drop-leftover-database', kind: 'remote', title: `drop the database an unfinished migration left on ${target.name}`, argv: buildDropDatabaseArgv(app) });
  }
  if (engine !== 'none') {
    if ((app.manifest.database.roles ?? []).length > 0) {
      stream('roles', `database roles/users of ${app.name} with their grants (${(app.manifest.database.roles ?? []).join(', ')})`, {
        name: 'roles',
        producer: [...input.deployCommand, 'db', 'roles-sql', app.name, '--part', 'users', ...(input.configPath ? ['--config', input.configPath] : [])],
        producerEnv: {},
        consumer: { kind: 'command', argv: buildRolesConsumerArgv(app) },
      });
    }
    const dumpPath = archivedDumpPath(app);
    stream('database', `database ${app.manifest.database.name ?? app.name} (${input.archiveHasDump ? `${dumpPath} from the archive` : 'live dump'})`, {
      name: 'database',
      producer: input.archiveHasDump ? ['borg', 'extract', '--stdout', `::${input.archive}`, dumpPath] : buildLiveDumpArgv(app),
      producerEnv: input.archiveHasDump ? input.borgEnv : {},
      consumer: { kind: 'command', argv: buildRestoreConsumerArgv(app) },
    });
    if (engine === 'mariadb' && (app.manifest.database.roles ?? []).length > 0) {
      // Table, column and routine grants name objects that exist only after the restore.
      stream('grants', `table-level grants of ${(app.manifest.database.roles ?? []).join(', ')}`, {
        name: 'grants',
        producer: [...input.deployCommand, 'db', 'roles-sql', app.name, '--part', 'grants', ...(input.configPath ? ['--config', input.configPath] : [])],
        producerEnv: {},
        consumer: { kind: 'command', argv: buildRolesConsumerArgv(app) },
      });
    }
  }
  if (input.withHistory) {
    const sourceRepo = resolveBorgRepo(app, input.source);
    const targetRepo = expandPlaceholders(app.manifest.borg?.repository ?? '{state_dir}/borg/{app}', {
      app: app.name,
      state_dir: target.facts.stateDir,
      app_dir: target.facts.app.dir,
    });
    stream('history', `Borg history: the repository ${sourceRepo} with every archive`, {
      name: 'borg-history',
      producer: ['tar', '-c', '--numeric-owner', '-C', sourceRepo, '.'],
      producerEnv: {},
      consumer: { kind: 'into', dir: targetRepo },
    });
  }
  steps.push({ id: 'commit', kind: 'remote', title: `swap the staged folder into ${target.facts.app.dir}`, argv: remote(['commit', app.name, '--run-id', runId]) });
  steps.push({
    id: 'verify-data',
    kind: 'verify',
    title: `compare ${target.name} with the source before the app starts: every volume file against the archive (count, bytes, SHA-256), table row counts, carried metadata`,
    argv: remote(['checksums', '--dir', target.facts.app.dir]),
  });
  steps.push({ id: 'install', kind: 'phase', where: 'target', phase: 'install', title: `bin/install on ${target.name}`, argv: [...input.remoteDeployCommand, 'install', app.name] });
  steps.push({ id: 'start', kind: 'phase', where: 'target', phase: 'start', title: `bin/start on ${target.name}`, argv: [...input.remoteDeployCommand, 'start', app.name] });
  steps.push({
    id: 'verify',
    kind: 'verify',
    title: `verify ${app.name} on ${target.name}: health checks, volumes against the archive, row counts, metadata${input.withHistory ? ', borg check and archive list' : ''}`,
    argv: [...input.remoteDeployCommand, 'health', app.name, '--json'],
  });
  steps.push({ id: 'finish', kind: 'remote', title: `mark the migration finished on ${target.name}`, argv: remote(['finish', app.name]) });
  return { app: app.name, runId, archive: input.archive, transport: input.transport, target: target.name, steps };
}
