import { join, posix } from 'node:path';
import { expandPlaceholders } from '@deploykit/manifest';
import { buildExtractArgv } from '@deploykit/transport';
import type { DatabaseEngine } from '../database/engine.js';
import { runDatabaseName } from '../database/identifiers.js';
import { GETFATTR_ARGV, LATE_MTIME_ARGV, SPARSE_ARGV, mtimeArgv } from '../migrate/fidelity.js';
import { removeXattrsArgv } from './exact-xattrs.js';
import type { MigrationContents, MigrationHeader, MigrationPart } from '../migrate/migration-header.js';
import { isFidelityTrivial } from '../migrate/fidelity.js';

/** Where a target-side run puts things: every path and database name it may create, by run id. */
export interface TargetLayout {
  readonly appsRoot: string;
  readonly stateDir: string;
  /** `<apps root>/.migrate-<app>-<run id>`: hidden from discovery, removed by run id. */
  readonly stagingRoot: string;
  /** The staged app folder (the files part lands here; volumes are moved in before the commit). */
  readonly stagedApp: string;
  /** Where the app lives once committed. */
  readonly finalDir: string;
  /** Where a replaced app folder waits until its successor is healthy. */
  readonly asideDir: string;
  /** A cutover: where the entries its delta takes away or replaces wait (same filesystem as the app) until the app is healthy. */
  readonly cutoverUndoDir: string;
  readonly stageDatabase: string;
  readonly asideDatabase: string;
  /** The Borg repository path the app's manifest gives on this host (with --with-history). */
  readonly repository: string;
  readonly asideRepository: string;
  /** The target-side run record. */
  readonly journal: string;
}

/** Path-safe name of a part's staging dir (`volume:uploads` -> `volume-uploads`). */
export function partDirName(part: string): string {
  return part.replace(/[^A-Za-z0-9_.-]/g, '-');
}

/** Where a dump-file engine holds the database part until the commit. */
export function databaseDumpFile(layout: TargetLayout): string {
  return join(partDir(layout, 'database'), 'dump.sql');
}

/** Where a dump-file engine keeps a replaced database aside (a whole dump) until the new app is healthy. */
export function asideDumpFile(layout: TargetLayout): string {
  return join(layout.stagingRoot, 'aside-database.sql');
}

/** The staging dir a tar part extracts into. */
export function partDir(layout: TargetLayout, part: string): string {
  return join(layout.stagingRoot, 'parts', partDirName(part));
}

/** Builds the layout of run `runId` of `app` on a host with these roots (pure). */
export function buildTargetLayout(
  header: Pick<MigrationHeader, 'app' | 'runId'> & { manifest: { borg?: { repository: string } } },
  roots: { appsRoot: string; stateDir: string },
): TargetLayout {
  const { app, runId } = header;
  const finalDir = join(roots.appsRoot, app);
  const repository = expandPlaceholders(header.manifest.borg?.repository ?? '{state_dir}/borg/{app}', {
    app,
    state_dir: roots.stateDir,
    app_dir: finalDir,
  });
  return {
    appsRoot: roots.appsRoot,
    stateDir: roots.stateDir,
    stagingRoot: join(roots.appsRoot, `.migrate-${app}-${runId}`),
    stagedApp: join(roots.appsRoot, `.migrate-${app}-${runId}`, 'parts', 'files'),
    finalDir,
    asideDir: join(roots.appsRoot, `.${app}.aside-${runId}`),
    cutoverUndoDir: join(roots.appsRoot, `.${app}.cutover-${runId}`),
    stageDatabase: runDatabaseName(runId, 'stage'),
    asideDatabase: runDatabaseName(runId, 'aside'),
    repository,
    asideRepository: `${repository}.aside-${runId}`,
    journal: join(roots.stateDir, 'apps', app, 'incoming', `${runId}.jsonl`),
  };
}

/** What is already on the target where the app goes: set aside (with --replace) at the commit. */
export interface TargetOccupancy {
  readonly folder: boolean;
  readonly database: boolean;
  readonly repository: boolean;
}

/** One step of the target-side run, as data; `commands` lists every argv the step may run. */
export type TargetStep =
  | {
      readonly id: 'preflight';
      readonly kind: 'preflight';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: 'lock';
      readonly kind: 'lock';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: 'recover';
      readonly kind: 'recover';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: string;
      readonly kind: 'receive';
      readonly part: MigrationPart;
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: 'assemble';
      readonly kind: 'assemble';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  /** A cutover: stop the copy a migration left here (it is started again on a rollback). */
  | {
      readonly id: 'stop-app';
      readonly kind: 'stop-app';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  /** A cutover: every volume of the copy here still equals the base archive (else refuse, unless --force). */
  | {
      readonly id: 'check-base';
      readonly kind: 'check-base';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  /** A cutover: one volume's delta applied in place, each change journaled with its undo. */
  | {
      readonly id: string;
      readonly kind: 'apply-delta';
      readonly volume: string;
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: string;
      readonly kind: 'apply-metadata';
      readonly volume: string;
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: string;
      readonly kind: 'verify-volume';
      readonly volume: string;
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: 'verify-rows';
      readonly kind: 'verify-rows';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: 'verify-history';
      readonly kind: 'verify-history';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: 'commit';
      readonly kind: 'commit';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: 'install' | 'start';
      readonly kind: 'phase';
      readonly phase: 'install' | 'start';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: 'health';
      readonly kind: 'health';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    }
  | {
      readonly id: 'finish';
      readonly kind: 'finish';
      readonly title: string;
      readonly commands: readonly (readonly string[])[];
    };

/** The argv borg checks of a carried repository run (with BORG_REPO in the environment). */
export const BORG_CHECK_ARGV = ['borg', 'check'] as const;
export const BORG_LIST_ARGV = ['borg', 'list', '--short'] as const;

/** Inputs of buildTargetPlan: all data, no I/O. */
export interface TargetPlanInput {
  readonly header: MigrationHeader;
  /** Known once the contents record arrived (metadata steps depend on it); without it, none are planned. */
  readonly contents?: MigrationContents;
  readonly layout: TargetLayout;
  readonly engine?: DatabaseEngine;
  readonly occupied: TargetOccupancy;
}

/** The argv applying a volume's carried metadata runs (setfattr, fallocate per sparse file; mtimes are set in-process). */
export function metadataCommands(contents: MigrationContents, volume: string): string[][] {
  const fidelity = contents.volumes[volume]?.fidelity;
  if (fidelity === undefined || isFidelityTrivial(fidelity)) return [];
  const commands: string[][] = [];
  if (fidelity.xattrDump.trim() !== '') commands.push(['setfattr', '-h', '--restore=-']);
  for (const path of fidelity.sparseFiles) commands.push(['fallocate', '--dig-holes', '--', path]);
  if ((fidelity.subsecondMtimes ?? []).length > 0 || fidelity.root !== undefined) commands.push(mtimeArgv('apply'));
  return commands;
}

/**
 * Per volume: applying what export-tar dropped (when the contents say there is some), then the
 * verification against the listing (and the carried metadata). Shared by a migration and a cutover.
 */
function volumeCheckSteps(
  input: TargetPlanInput,
  volumes: readonly MigrationPart[],
  verifyTitle: (volume: string) => string,
  options: { cutover?: boolean } = {},
): TargetStep[] {
  const steps: TargetStep[] = [];
  if (input.contents !== undefined) {
    for (const part of volumes) {
      const name = part.volume!.name;
      const commands = metadataCommands(input.contents, name);
      if (options.cutover) {
        // A cutover changes the copy in place: its xattrs/ACLs are made exactly the source's, also when the source has none left.
        const exact = [[...GETFATTR_ARGV], removeXattrsArgv(), ['setfattr', '-h', '--restore=-']];
        steps.push({
          id: `metadata:${name}`,
          kind: 'apply-metadata',
          volume: name,
          title: `make the xattrs and ACLs in ${name} exactly the source's (the copy's kept for the undo); apply late mtimes, sparse files`,
          commands: [...exact, ...commands.filter((argv) => argv[0] !== 'setfattr')],
        });
      } else if (commands.length > 0) {
        steps.push({
          id: `metadata:${name}`,
          kind: 'apply-metadata',
          volume: name,
          title: `apply what export-tar dropped in ${name} (xattrs, ACLs, late mtimes, sparse files)`,
          commands,
        });
      }
    }
  }
  for (const part of volumes) {
    const fidelity = input.contents?.volumes[part.volume!.name]?.fidelity;
    const scan =
      fidelity !== undefined && !isFidelityTrivial(fidelity)
        ? [[...GETFATTR_ARGV], [...LATE_MTIME_ARGV], [...SPARSE_ARGV], mtimeArgv('scan-all')]
        : [];
    steps.push({
      id: `verify:${part.volume!.name}`,
      kind: 'verify-volume',
      volume: part.volume!.name,
      title: `${verifyTitle(part.volume!.name)}${scan.length > 0 ? ' and the carried metadata' : ''}`,
      commands: scan,
    });
  }
  return steps;
}

/**
 * Builds the target-side run as data: every step the run executes, in order, with every command
 * it may run. The executor switches on `kind`; a command not listed in its step is refused.
 */
export function buildTargetPlan(input: TargetPlanInput): TargetStep[] {
  const { header, layout, engine, occupied } = input;
  const steps: TargetStep[] = [];
  const client = engine ? [engine.clientArgv()] : [];
  steps.push({
    id: 'preflight',
    kind: 'preflight',
    title: `check this host can take ${header.app}: deploy version, tools, space`,
    commands: [],
  });
  steps.push({ id: 'lock', kind: 'lock', title: `lock ${header.app} on this host`, commands: [] });
  steps.push({
    id: 'recover',
    kind: 'recover',
    title: `clean up what earlier unfinished runs of this app left (by run id); nothing of the app in the way${occupied.folder || occupied.database || occupied.repository ? ' but what --replace replaces' : ''}`,
    commands: client,
  });
  for (const part of header.parts) {
    const dir = partDir(layout, part.id);
    const commands: string[][] = [];
    let title = part.title;
    switch (part.kind) {
      case 'app-folder':
      case 'volume':
      case 'volume-delta':
      case 'borg-repo':
        commands.push(buildExtractArgv(dir));
        title = `${part.title} -> ${dir}`;
        break;
      case 'db-roles':
        commands.push(engine!.clientArgv());
        title = `${part.title}: create the missing ones bare now, the rest at the commit`;
        break;
      case 'database': {
        const staging = engine!.staging;
        if (staging.kind === 'rename') {
          // The admin client makes the staging database; in it the extensions' owners create theirs before the restore, and it applies the source's fixups after it.
          commands.push(engine!.clientArgv(), engine!.clientArgv(layout.stageDatabase), [
            ...staging.restoreConsumer(layout.stageDatabase).argv,
          ]);
          title = `${part.title} -> staging database ${layout.stageDatabase}`;
        } else {
          title = `${part.title} -> ${databaseDumpFile(layout)}, held until the commit`;
        }
        break;
      }
      case 'db-grants':
        title = `${part.title}: held until the commit`;
        break;
    }
    steps.push({ id: `receive:${part.id}`, kind: 'receive', part, title, commands });
  }
  if (header.cutover) return [...steps, ...cutoverSteps(input)];
  const volumes = header.parts.filter((part) => part.kind === 'volume' && part.volume !== undefined);
  steps.push({
    id: 'assemble',
    kind: 'assemble',
    title: `put the volumes into the staged app folder and check its app.yaml against the header`,
    commands: [],
  });
  steps.push(
    ...volumeCheckSteps(
      input,
      volumes,
      (name) => `every file of ${name} against the archive listing (count, bytes, SHA-256)`,
    ),
  );
  const verifyRows: TargetStep | undefined =
    engine && header.database
      ? {
          id: 'verify-rows',
          kind: 'verify-rows',
          title: `row count of every table in ${engine.staging.kind === 'rename' ? layout.stageDatabase : header.database.name} against the source at backup time${engine.staging.kind === 'rename' ? '' : ' (restored at the commit, before the app starts)'}`,
          commands: [engine.clientArgv(engine.staging.kind === 'rename' ? layout.stageDatabase : header.database.name)],
        }
      : undefined;
  if (verifyRows && engine?.staging.kind === 'rename') steps.push(verifyRows);
  if (header.parts.some((part) => part.kind === 'borg-repo')) {
    steps.push({
      id: 'verify-history',
      kind: 'verify-history',
      title: 'borg check of the carried repository and its archive list against the source',
      commands: [[...BORG_CHECK_ARGV], [...BORG_LIST_ARGV]],
    });
  }
  const commitCommands: string[][] = [];
  if (occupied.folder) commitCommands.push([posix.join(layout.finalDir, 'bin', 'stop')]);
  if (engine) commitCommands.push(engine.clientArgv());
  if (engine?.staging.kind === 'dump-file' && header.database) {
    if (occupied.database) commitCommands.push(engine.staging.asideDumpArgv(header.database.name));
    commitCommands.push(engine.staging.restoreArgv());
  }
  const asides = [
    occupied.folder ? 'folder' : '',
    occupied.database ? 'database' : '',
    occupied.repository ? 'Borg repository' : '',
  ].filter(Boolean);
  steps.push({
    id: 'commit',
    kind: 'commit',
    title: `${asides.length > 0 ? `stop the app there now and set its ${asides.join(', ')} aside; ` : ''}move the staged folder${engine ? ', database' : ''}${header.options.withHistory ? ', repository' : ''} to their names${engine && header.database!.roles.length > 0 ? '; apply roles/users with their grants' : ''}`,
    commands: commitCommands,
  });
  if (verifyRows && engine?.staging.kind === 'dump-file') steps.push(verifyRows);
  steps.push({
    id: 'install',
    kind: 'phase',
    phase: 'install',
    title: `bin/install in ${layout.finalDir}`,
    commands: [[posix.join(layout.finalDir, 'bin', 'install')]],
  });
  steps.push({
    id: 'start',
    kind: 'phase',
    phase: 'start',
    title: `bin/start in ${layout.finalDir}`,
    commands: [[posix.join(layout.finalDir, 'bin', 'start')]],
  });
  steps.push({ id: 'health', kind: 'health', title: `the app's own health checks on this host`, commands: [] });
  steps.push({
    id: 'finish',
    kind: 'finish',
    title:
      asides.length > 0
        ? `drop the replaced app's ${asides.join(', ')} kept aside; mark the run finished`
        : 'mark the run finished',
    commands: engine?.staging.kind === 'rename' && occupied.database ? [engine.clientArgv()] : [],
  });
  return steps;
}

/**
 * The steps of a cutover after its parts arrived (docs/decisions/0008): the copy a finished
 * migration left here is stopped, checked against the base archive, changed in place into the final
 * archive's volumes, verified whole, its database swapped, started and checked. Nothing is installed:
 * the app folder stays as the migration made it.
 */
function cutoverSteps(input: TargetPlanInput): TargetStep[] {
  const { header, layout, engine, occupied } = input;
  const cutover = header.cutover!;
  const volumes = header.parts.filter((part) => part.kind === 'volume-delta' && part.volume !== undefined);
  const steps: TargetStep[] = [];
  steps.push({
    id: 'stop-app',
    kind: 'stop-app',
    title: `stop ${header.app} here (bin/stop; started again if the cutover fails)`,
    commands: [[posix.join(layout.finalDir, 'bin', 'stop')]],
  });
  steps.push({
    id: 'check-base',
    kind: 'check-base',
    title: `every volume here still equals archive ${cutover.baseArchive} (paths, types, sizes, link targets)`,
    commands: [],
  });
  for (const part of volumes) {
    const name = part.volume!.name;
    steps.push({
      id: `apply:${name}`,
      kind: 'apply-delta',
      volume: name,
      title: `apply the delta to ${posix.join(layout.finalDir, part.volume!.path)}: what it takes away or replaces waits in ${layout.cutoverUndoDir}`,
      commands: [],
    });
  }
  steps.push(
    ...volumeCheckSteps(
      input,
      volumes,
      (name) =>
        input.contents?.volumes[name]?.delta?.whole === true
          ? `every file of ${name} against the final archive's listing (count, bytes, SHA-256)`
          : `every file of ${name} against the final archive's listing (count, bytes; SHA-256 of the files the delta brought)`,
      { cutover: true },
    ),
  );
  if (engine && header.database && engine.staging.kind === 'rename') {
    steps.push({
      id: 'verify-rows',
      kind: 'verify-rows',
      title: `row count of every table in ${layout.stageDatabase} against the source after writes stopped`,
      commands: [engine.clientArgv(layout.stageDatabase)],
    });
  }
  const commitCommands: string[][] = [];
  if (engine) commitCommands.push(engine.clientArgv());
  if (engine?.staging.kind === 'dump-file' && header.database) {
    if (occupied.database) commitCommands.push(engine.staging.asideDumpArgv(header.database.name));
    commitCommands.push(engine.staging.restoreArgv());
  }
  if (engine && header.database) {
    steps.push({
      id: 'commit',
      kind: 'commit',
      title: `set the database ${header.database.name} aside and give the restored one its name${header.database.roles.length > 0 ? '; apply roles/users with their grants' : ''}`,
      commands: commitCommands,
    });
    if (engine.staging.kind === 'dump-file')
      steps.push({
        id: 'verify-rows',
        kind: 'verify-rows',
        title: `row count of every table in ${header.database.name} against the source after writes stopped`,
        commands: [engine.clientArgv(header.database.name)],
      });
  }
  steps.push({
    id: 'start',
    kind: 'phase',
    phase: 'start',
    title: `bin/start in ${layout.finalDir}`,
    commands: [[posix.join(layout.finalDir, 'bin', 'start')]],
  });
  steps.push({ id: 'health', kind: 'health', title: `the app's own health checks on this host`, commands: [] });
  steps.push({
    id: 'finish',
    kind: 'finish',
    title: `drop what the cutover kept aside (${layout.cutoverUndoDir}${occupied.database ? ', the previous database' : ''}); mark the run finished`,
    commands: engine?.staging.kind === 'rename' && occupied.database ? [engine.clientArgv()] : [],
  });
  return steps;
}
