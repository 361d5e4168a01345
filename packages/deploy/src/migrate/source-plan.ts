import { join, posix } from 'node:path';
import type { AppFolder, TransportName } from '@deploykit/core';
import type { DatabaseEngine } from '../database/engine.js';
import type { HostContext } from '../host-context.js';
import { resolveBorgRepo } from '../phase-env.js';
import { buildArchiveListingArgv } from './archive-listing.js';
import { isFidelityTrivial, type FidelityMetadata } from './fidelity.js';
import { resumeWritesCommand } from './paired-cutover.js';
import { withPatternsOnStdin } from './volume-delta.js';
import type { CutoverHeader, MigrationDatabase, MigrationHeader, MigrationPart } from './migration-header.js';

/** A part of the bundle and the producer on the source that makes its bytes. */
export interface SourcePart {
  readonly part: MigrationPart;
  readonly producer: readonly string[];
  /** Producer environment (no secret values: borg reads its passphrase file itself). */
  readonly producerEnv: Readonly<Record<string, string>>;
  /** Bytes for the producer's stdin (a cutover's delta part: the borg patterns of its entries). */
  readonly producerInput?: string;
}

/** One step of the source side of a migration, as data: `--plan` prints these, the run executes them. */
export type SourceStep =
  | { readonly id: 'lock'; readonly kind: 'lock'; readonly title: string; readonly argv: readonly string[] }
  /** Ask the target whether it can take the app (a `--check` run; transports whose target answers only after the bytes). */
  | { readonly id: 'check'; readonly kind: 'check'; readonly title: string; readonly argv: readonly string[] }
  /** Start the target-side run and send it the header (interactive transports: before the backup). */
  | { readonly id: 'connect'; readonly kind: 'connect'; readonly title: string; readonly argv: readonly string[] }
  | { readonly id: 'backup'; readonly kind: 'backup'; readonly title: string; readonly argv: readonly string[] }
  | {
      readonly id: 'backup';
      readonly kind: 'reuse-archive';
      readonly title: string;
      readonly argv: readonly string[];
      readonly fromRun: string;
    }
  | { readonly id: 'contents'; readonly kind: 'contents'; readonly title: string; readonly argv: readonly string[] }
  | {
      readonly id: string;
      readonly kind: 'send';
      readonly title: string;
      readonly argv: readonly string[];
      readonly source: SourcePart;
    }
  | {
      readonly id: string;
      readonly kind: 'skip';
      readonly title: string;
      readonly argv: readonly string[];
      readonly source: SourcePart;
      readonly sha256: string;
      readonly bytes: number;
    }
  | { readonly id: 'trailer'; readonly kind: 'trailer'; readonly title: string; readonly argv: readonly string[] }
  | { readonly id: 'target'; readonly kind: 'target'; readonly title: string; readonly argv: readonly string[] }
  /** A cutover: stop the app taking writes here (bin/maintenance on, else bin/stop) before the final backup. */
  | {
      readonly id: 'stop-writes';
      readonly kind: 'stop-writes';
      readonly title: string;
      readonly argv: readonly string[];
    }
  /** A cutover: mark the copy here as moved (deploy start refuses it without --force). */
  | { readonly id: 'mark-moved'; readonly kind: 'mark-moved'; readonly title: string; readonly argv: readonly string[] }
  /** Pairing: share the bundle with ffl; the new host's operator starts the target-side run with the link. */
  | { readonly id: 'share'; readonly kind: 'share'; readonly title: string; readonly argv: readonly string[] }
  /** Pairing: wait until ffl reports the bundle delivered (the new host reports on its own screen). */
  | { readonly id: 'delivered'; readonly kind: 'delivered'; readonly title: string; readonly argv: readonly string[] }
  /** A cutover in pairing mode: stay stopped, marked as waiting for the verdict the new host shows (decision 0011). */
  | {
      readonly id: 'await-verdict';
      readonly kind: 'await-verdict';
      readonly title: string;
      readonly argv: readonly string[];
    };

/** A migration plan of the source side: its steps, and the target's as the target planned them. */
export interface SourcePlan {
  readonly app: string;
  readonly runId: string;
  readonly archive: string;
  readonly transport: TransportName;
  readonly target: string;
  readonly steps: readonly SourceStep[];
}

/** Paths of the app folder the files part does not carry (volumes, build output, runtime leftovers). */
export function filesExcludes(app: AppFolder): string[] {
  const excludes = app.manifest.volumes.map((volume) => `./${posix.normalize(volume.path).replace(/\/$/, '')}`);
  return [...excludes, './node_modules', './app/node_modules', './db', './.state'];
}

/** Everything the part builder needs; it does no I/O. */
export interface PartsInput {
  readonly app: AppFolder;
  readonly source: HostContext;
  readonly engine?: DatabaseEngine;
  readonly archive: string;
  readonly withHistory: boolean;
  readonly borgEnv: Readonly<Record<string, string>>;
  /** Whether the archive holds the database dump (else a live dump is streamed). */
  readonly archiveHasDump: boolean;
  /** The `deploy` command on this host (for the roles building block) and the config path. */
  readonly deployCommand: readonly string[];
  readonly configPath?: string;
  /** Estimated bytes per part id. */
  readonly estimates: Readonly<Record<string, number>>;
  /** A cutover: each volume as a delta part (the entries that changed since the base archive), no app folder, no history. */
  readonly cutover?: boolean;
}

/** The parts of an app's bundle, in bundle order, each with its producer (pure). */
export function buildSourceParts(input: PartsInput): SourcePart[] {
  const { app, archive, engine } = input;
  const estimate = (id: string): number => input.estimates[id] ?? 0;
  const deploy = (words: readonly string[]): string[] => [
    ...input.deployCommand,
    ...words,
    ...(input.configPath ? ['--config', input.configPath] : []),
  ];
  const parts: SourcePart[] = input.cutover
    ? []
    : [
        {
          part: {
            id: 'files',
            kind: 'app-folder',
            title: 'app folder: manifest, service definition, bin/, config, secrets (0600 kept)',
            expectedBytes: estimate('files'),
            fromArchive: false,
          },
          producer: [
            'tar',
            '-c',
            '--numeric-owner',
            '-C',
            app.dir,
            ...filesExcludes(app).map((path) => `--exclude=${path}`),
            '.',
          ],
          producerEnv: {},
        },
      ];
  for (const volume of app.manifest.volumes) {
    const path = posix.normalize(volume.path).replace(/\/$/, '');
    if (input.cutover) {
      // The entries to send are known once the final archive is listed: borg reads them as patterns on stdin.
      // A volume whose target writes are discarded (logs) travels whole and replaces the copy there.
      const id = `delta:${volume.name}`;
      const whole = volume.target_writes === 'discard';
      const exportArgv = ['borg', 'export-tar', `--strip-components=${path.split('/').length}`, `::${archive}`, '-'];
      parts.push({
        part: {
          id,
          kind: 'volume-delta',
          title: `volume ${volume.name} (${path}): ${whole ? 'whole (target_writes: discard)' : 'what changed since the migration'}, from archive ${archive}`,
          expectedBytes: whole ? estimate(`volume:${volume.name}`) : 0,
          volume: { name: volume.name, path },
          fromArchive: false,
        },
        producer: whole ? [...exportArgv, path] : withPatternsOnStdin(exportArgv),
        producerEnv: input.borgEnv,
      });
      continue;
    }
    const id = `volume:${volume.name}`;
    parts.push({
      part: {
        id,
        kind: 'volume',
        title: `volume ${volume.name} (${path}) from archive ${archive}`,
        expectedBytes: estimate(id),
        volume: { name: volume.name, path },
        fromArchive: true,
      },
      producer: ['borg', 'export-tar', `--strip-components=${path.split('/').length}`, `::${archive}`, '-', path],
      producerEnv: input.borgEnv,
    });
  }
  const database = app.manifest.database;
  if (engine !== undefined && database.name !== undefined) {
    const roles = database.roles ?? [];
    if (roles.length > 0) {
      parts.push({
        part: {
          id: 'roles',
          kind: 'db-roles',
          title: `database roles/users of ${app.name} with their grants (${roles.join(', ')})`,
          expectedBytes: estimate('roles'),
          fromArchive: false,
        },
        producer: deploy(['db', 'roles-sql', app.name, '--part', 'users']),
        producerEnv: {},
      });
    }
    const dumpPath = engine.archivedDumpPath(database.name);
    parts.push({
      part: {
        id: 'database',
        kind: 'database',
        title: `database ${database.name} (${input.archiveHasDump ? `${dumpPath} from the archive` : 'live dump'})`,
        expectedBytes: estimate('database'),
        fromArchive: input.archiveHasDump,
      },
      producer: input.archiveHasDump
        ? ['borg', 'extract', '--stdout', `::${archive}`, dumpPath]
        : engine.liveDumpArgv(database.name),
      producerEnv: input.archiveHasDump ? input.borgEnv : {},
    });
    if (engine.kind === 'mariadb' && roles.length > 0) {
      // Table, column and routine grants name objects that exist only after the restore.
      parts.push({
        part: {
          id: 'grants',
          kind: 'db-grants',
          title: `table-level grants of ${roles.join(', ')}`,
          expectedBytes: estimate('grants'),
          fromArchive: false,
        },
        producer: deploy(['db', 'roles-sql', app.name, '--part', 'grants']),
        producerEnv: {},
      });
    }
  }
  if (input.withHistory && !input.cutover) {
    const repository = resolveBorgRepo(app, input.source);
    parts.push({
      part: {
        id: 'history',
        kind: 'borg-repo',
        title: `Borg history: the repository ${repository} with every archive`,
        expectedBytes: estimate('history'),
        fromArchive: false,
      },
      producer: ['tar', '-c', '--numeric-owner', '-C', repository, '.'],
      producerEnv: {},
    });
  }
  return parts;
}

/** The tools the target needs for these parts. */
export function targetTools(
  parts: readonly SourcePart[],
  engine: DatabaseEngine | undefined,
  fidelity: Readonly<Record<string, FidelityMetadata>>,
): string[] {
  const tools = new Set(['tar']);
  if (engine !== undefined) for (const tool of engine.tools({ liveDump: false }).target) tools.add(tool);
  if (parts.some((part) => part.part.kind === 'borg-repo')) tools.add('borg');
  if (Object.values(fidelity).some((metadata) => !isFidelityTrivial(metadata)))
    for (const tool of ['setfattr', 'getfattr', 'fallocate', 'python3']) tools.add(tool);
  return [...tools];
}

/** Inputs of the header builder. */
export interface HeaderInput {
  readonly app: AppFolder;
  readonly manifestText: string;
  readonly runId: string;
  readonly source: HostContext;
  readonly deployVersion: string;
  readonly parts: readonly SourcePart[];
  readonly database?: MigrationDatabase;
  readonly tools: readonly string[];
  readonly withHistory: boolean;
  readonly stallSeconds: number;
  /** Pairing mode: the run cannot be resumed (see MigrationHeader.options). */
  readonly pairing?: boolean;
  readonly targetPlan: readonly { readonly id: string; readonly title: string }[];
  /** Bytes the target holds twice for a while (a dump file until its restore), on top of the parts. */
  readonly heldBytes?: number;
  /** A cutover: the migration it builds on and each volume as that migration left it. */
  readonly cutover?: CutoverHeader;
}

/** The bundle's header record for a migration (pure). */
export function buildMigrationHeader(input: HeaderInput): MigrationHeader {
  return {
    kind: 'deploykit-migration',
    app: input.app.name,
    runId: input.runId,
    createdAt: new Date().toISOString(),
    source: { host: input.source.hostName, address: input.source.hostAddress, deployVersion: input.deployVersion },
    manifestText: input.manifestText,
    parts: input.parts.map((part) => part.part),
    ...(input.database ? { database: input.database } : {}),
    // The database part's estimate is the database's size on the server: what its restore takes.
    neededBytes: input.parts.reduce((sum, part) => sum + part.part.expectedBytes, 0) + (input.heldBytes ?? 0),
    tools: input.tools,
    options: {
      withHistory: input.withHistory,
      stallSeconds: input.stallSeconds,
      ...(input.pairing ? { pairing: true } : {}),
    },
    plan: input.targetPlan,
    ...(input.cutover ? { cutover: input.cutover } : {}),
  };
}

/** Inputs of the source plan: the parts, the transport's shape, and a resume when the target offers one. */
export interface SourcePlanInput {
  readonly app: AppFolder;
  readonly runId: string;
  readonly archive: string;
  readonly transport: TransportName;
  readonly target: string;
  /** The target command (for the plan display): `deploy receive <app> --from ...`. */
  readonly targetArgv: readonly string[];
  readonly checkArgv: readonly string[];
  /** True when the target answers before the first payload byte (ssh, local): no separate check. */
  readonly interactive: boolean;
  readonly parts: readonly SourcePart[];
  readonly borgEnv: Readonly<Record<string, string>>;
  /** The archive exists already (made by this run's first session, or by the run a resume continues): no backup. */
  readonly reuseArchiveOf?: string;
  /** Parts the target holds verified from that archive: skipped, not sent. */
  readonly resume?: {
    readonly fromRun: string;
    readonly parts: readonly { readonly id: string; readonly bytes: number; readonly sha256: string }[];
  };
  /** Pairing mode: no session with the target; the bundle is shared with ffl (this argv) and pulled by the new host. */
  readonly pairing?: { readonly shareArgv: readonly string[] };
  /** A cutover: how writes stop here, and the archive the target's copy holds. */
  readonly cutover?: {
    readonly stopArgv: readonly string[];
    readonly baseArchive: string;
    readonly stopWrites?: 'maintenance' | 'stop';
  };
}

/** Builds the source side of a migration as data (pure). */
export function buildSourcePlan(input: SourcePlanInput): SourcePlan {
  const { app } = input;
  const steps: SourceStep[] = [{ id: 'lock', kind: 'lock', title: `lock ${app.name} on this host`, argv: [] }];
  const connect: SourceStep = input.pairing
    ? {
        id: 'share',
        kind: 'share',
        title: `share the bundle with ffl: one link, one pickup code (shown only on this terminal); on the new host: ${input.targetArgv.join(' ')}`,
        argv: input.pairing.shareArgv,
      }
    : {
        id: 'connect',
        kind: 'connect',
        title: `start the target-side run on ${input.target} (${input.transport}) and send it the header`,
        argv: input.targetArgv,
      };
  // A paired cutover shares first and stops writes only once the new host pulls (decision 0011).
  const shareFirst = input.pairing !== undefined && input.cutover !== undefined;
  if (input.interactive || shareFirst) steps.push(connect);
  else if (!input.pairing)
    steps.push({
      id: 'check',
      kind: 'check',
      title: `ask ${input.target} whether it can take ${app.name} (space, tools, conflicts, parts kept for a resume)`,
      argv: input.checkArgv,
    });
  if (input.reuseArchiveOf !== undefined) {
    const why = input.resume
      ? `the target keeps verified parts of it (run ${input.resume.fromRun})`
      : 'made by this run already';
    steps.push({
      id: 'backup',
      kind: 'reuse-archive',
      title: `reuse archive ${input.archive}: ${why}`,
      argv: [],
      fromRun: input.reuseArchiveOf,
    });
  } else {
    if (shareFirst)
      steps.push({
        id: 'stop-writes',
        kind: 'stop-writes',
        title: `once the new host pulls: stop ${app.name} taking writes here (the write-stop window starts; it ends when that host reports the app healthy, or this host serves again)`,
        argv: input.cutover!.stopArgv,
      });
    else if (input.cutover)
      steps.push({
        id: 'stop-writes',
        kind: 'stop-writes',
        title: `stop ${app.name} taking writes here (the write-stop window starts; it ends when ${input.target} reports the app healthy, or this host serves again)`,
        argv: input.cutover.stopArgv,
      });
    steps.push({
      id: 'backup',
      kind: 'backup',
      title: `fresh Borg archive ${input.archive} (bin/backup)${input.cutover ? ", the final one: incremental after the migration's" : ''}`,
      argv: [join(app.dir, 'bin', 'backup')],
    });
  }
  const volumes = app.manifest.volumes.map((volume) => posix.normalize(volume.path).replace(/\/$/, ''));
  steps.push({
    id: 'contents',
    kind: 'contents',
    title: input.cutover
      ? `the delta of each volume between ${input.cutover.baseArchive} and ${input.archive} (two borg listings), the final listing with SHA-256, row counts, metadata export-tar drops`
      : `what the target verifies against: each volume's listing with SHA-256 from the archive, row counts, metadata export-tar drops`,
    argv: volumes.length > 0 ? buildArchiveListingArgv(input.archive, volumes[0]!) : [],
  });
  if (!input.interactive && !shareFirst) steps.push(connect);
  for (const source of input.parts) {
    const reused = input.resume?.parts.find((part) => part.id === source.part.id);
    if (reused !== undefined && source.part.fromArchive) {
      steps.push({
        id: `send:${source.part.id}`,
        kind: 'skip',
        title: `${source.part.title}: the target holds it verified (run ${input.resume!.fromRun})`,
        argv: [],
        source,
        sha256: reused.sha256,
        bytes: reused.bytes,
      });
    } else {
      steps.push({
        id: `send:${source.part.id}`,
        kind: 'send',
        title: source.part.title,
        argv: source.producer,
        source,
      });
    }
  }
  steps.push({
    id: 'trailer',
    kind: 'trailer',
    title: 'bundle trailer: every part and the whole stream with length and SHA-256',
    argv: [],
  });
  if (input.pairing)
    steps.push({
      id: 'delivered',
      kind: 'delivered',
      title: `wait until ffl reports the bundle delivered; ${input.target} verifies, commits, installs, starts and checks the app and shows its report there`,
      argv: [],
    });
  else if (input.cutover)
    steps.push({
      id: 'target',
      kind: 'target',
      title: `${input.target} stops its copy, checks it against ${input.cutover.baseArchive}, applies the delta and the database, verifies, starts and checks the app; its report`,
      argv: [],
    });
  else
    steps.push({
      id: 'target',
      kind: 'target',
      title: `${input.target} verifies, commits, installs, starts and checks the app; its report`,
      argv: [],
    });
  if (shareFirst) {
    steps.push({
      id: 'await-verdict',
      kind: 'await-verdict',
      title: `stay stopped and mark the cutover pending: ${app.name} here is marked as moved only by deploy cutover ${app.name} --confirm <code the new host shows on success>; on a rollback there: ${resumeWritesCommand(app.name, input.cutover!.stopWrites ?? 'stop')}`,
      argv: [],
    });
  } else if (input.cutover)
    steps.push({
      id: 'mark-moved',
      kind: 'mark-moved',
      title: `mark ${app.name} here as moved to ${input.target} (deploy start refuses it without --force); on a failure instead: serve here again`,
      argv: [],
    });
  return {
    app: app.name,
    runId: input.runId,
    archive: input.archive,
    transport: input.transport,
    target: input.target,
    steps,
  };
}

/** A plan step as the live view shows it (the `migrate.plan` event): a part's step carries its size. */
export interface PlanStepView {
  readonly id: string;
  readonly title: string;
  /** The part a `send` or `skip` step carries (its stream id in progress events). */
  readonly part?: string;
  /** Expected bytes of the part a `send` step sends, verified bytes of one a `skip` step reuses. */
  readonly bytes?: number;
  readonly reused?: boolean;
}

/** Describes a plan's steps for the live view: ids, titles, and the bytes of each part. */
export function describePlanSteps(steps: readonly SourceStep[]): PlanStepView[] {
  return steps.map((step) => ({
    id: step.id,
    title: step.title,
    ...(step.kind === 'send'
      ? { part: step.source.part.id, bytes: step.source.part.expectedBytes }
      : step.kind === 'skip'
        ? { part: step.source.part.id, bytes: step.bytes, reused: true }
        : {}),
  }));
}
