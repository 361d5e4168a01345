import { posix } from 'node:path';
import { DependencyError, type AppFolder, type Host } from '@deploykit/core';
import type { DatabaseEngine, ExtensionOwner } from '../database/engine.js';
import { engineOfApp } from '../database/engines.js';
import { createSqlClient } from '../database/sql-client.js';
import type { HostContext } from '../host-context.js';
import { SPECIAL_FILE_KINDS, specialFilesError, splitDeclared, type SpecialFileEntry } from './archive-listing.js';
import { buildBorgEnv } from './borg-env.js';
import { describeBorgFailure, runBorgList } from './borg-list.js';
import { isFidelityTrivial, scanFidelity, type FidelityMetadata } from './fidelity.js';
import { findOnPath } from './host-facts.js';

/** What the source learnt before anything changes; the parts and the header are built from it. */
export interface SourcePreflight {
  readonly engine?: DatabaseEngine;
  readonly borgEnv: Record<string, string>;
  readonly latestArchive: string | null;
  readonly archiveHasDump: boolean;
  readonly fidelity: Record<string, FidelityMetadata>;
  /** Per volume: the declared device nodes and FIFOs found on disk, devices with their major/minor. */
  readonly special?: Record<string, SpecialFileEntry[]>;
  /** Estimated bytes per part id. */
  readonly estimates: Record<string, number>;
  readonly databaseBytes: number;
  /** PostgreSQL: the extensions whose owner (an app role) creates them on the target before the restore. */
  readonly databaseExtensions?: readonly ExtensionOwner[];
  readonly notes: string[];
}

async function sizeOf(host: Host, dir: string): Promise<number> {
  const result = await host.run({ argv: ['du', '-sb', '--', dir] });
  return Number(result.stdout.split('\t')[0] ?? 0) || 0;
}

/**
 * Checks the source side of a migration and measures what will move: tools here, the app's Borg
 * repository and latest archive (does it hold the database dump?), volume and database sizes, and
 * what `borg export-tar` would lose in each volume (carried beside it). Refuses a volume holding
 * device nodes or FIFOs (named) that its `special_files` does not declare with that exact path and
 * type, which the target's tar guard would refuse; reads the declared devices' major/minor. Changes nothing.
 */
export async function runSourcePreflight(options: {
  app: AppFolder;
  source: HostContext;
  host: Host;
  withHistory: boolean;
}): Promise<SourcePreflight> {
  const { app, host } = options;
  const notes: string[] = [];
  const engine = engineOfApp(app);
  const borgEnv = await buildBorgEnv(app, options.source);
  // A locked repository throws (BORG_LOCKED, naming the lock): it is not "no archive yet".
  const last = await runBorgList(host, borgEnv, ['--short', '--last', '1'], 'the migrate preflight');
  const latestArchive = last.exitCode === 0 ? last.stdout.trim() || null : null;
  const databaseName = app.manifest.database.name;
  let archiveHasDump = engine !== undefined;
  if (latestArchive && engine && databaseName) {
    const dump = engine.archivedDumpPath(databaseName);
    const listed = await runBorgList(host, borgEnv, ['--short', `::${latestArchive}`, dump], 'the migrate preflight');
    archiveHasDump = listed.exitCode === 0 && listed.stdout.split('\n').includes(dump);
  } else if (last.exitCode !== 0) {
    // E.g. a repository bin/backup has not made yet: say what borg said, not just "no archive".
    notes.push(
      `borg list of ${borgEnv.BORG_REPO ?? 'the repository'} failed (${describeBorgFailure(last)}): no archive to read; sizes come from the volumes on disk; the backup step makes the first archive`,
    );
  } else if (!latestArchive) {
    // The app's bin/backup puts the dump into the archive (the archive contract, docs/app-folder.md).
    notes.push('no archive yet: sizes come from the volumes on disk; the backup step makes the first archive');
  }
  const tools = ['borg', 'tar', ...(engine ? engine.tools({ liveDump: !archiveHasDump }).source : [])];
  const missing: string[] = [];
  for (const tool of tools) if ((await findOnPath(tool)) === null) missing.push(tool);
  if (missing.length > 0) {
    throw new DependencyError(
      'TOOLS_MISSING',
      `missing on the source (${options.source.hostName}): ${missing.join(', ')}`,
      {
        hint: 'Install them (Debian: borgbackup, tar, postgresql-client, mariadb-client), then run migrate again.',
      },
    );
  }
  const estimates: Record<string, number> = {};
  const fidelity: Record<string, FidelityMetadata> = {};
  const specialFiles: Record<string, SpecialFileEntry[]> = {};
  let volumeBytes = 0;
  for (const volume of app.manifest.volumes) {
    const dir = posix.join(app.dir, volume.path);
    estimates[`volume:${volume.name}`] = await sizeOf(host, dir);
    volumeBytes += estimates[`volume:${volume.name}`]!;
    const special = await host.run({
      argv: ['find', dir, '(', '-type', 'b', '-o', '-type', 'c', '-o', '-type', 'p', ')', '-printf', '%y\\t%P\\0'],
    });
    const entries = special.stdout
      .split('\0')
      .filter((record) => record.includes('\t'))
      .map((record) => [record.slice(0, 1), record.slice(2)] as [string, string]);
    const split = splitDeclared(entries, volume.special_files);
    if (split.undeclared.length > 0)
      throw specialFilesError(volume.name, `on ${options.source.hostName}`, split.undeclared);
    specialFiles[volume.name] = [];
    for (const [type, path] of split.declared) {
      const kind = SPECIAL_FILE_KINDS[type]!;
      if (kind === 'fifo') {
        specialFiles[volume.name]!.push({ path, type: kind });
        continue;
      }
      // stat prints a device's major and minor in hex.
      const stat = await host.run({ argv: ['stat', '--printf', '%t %T', '--', posix.join(dir, path)] });
      const [major, minor] = stat.stdout.split(' ').map((hex) => parseInt(hex, 16));
      specialFiles[volume.name]!.push({
        path,
        type: kind,
        ...(stat.exitCode === 0 && Number.isInteger(major) && Number.isInteger(minor)
          ? { major: major!, minor: minor! }
          : {}),
      });
    }
    const scanned = await scanFidelity(host, dir);
    fidelity[volume.name] = scanned;
    if (!isFidelityTrivial(scanned)) {
      notes.push(
        `volume ${volume.name}: borg export-tar would drop ${scanned.xattrFiles} files' xattrs, ${scanned.aclFiles} ACLs, clamp ${scanned.lateMtimes.length} mtimes after 2038 and fill ${scanned.sparseFiles.length} sparse files; a metadata side channel carries them`,
      );
    }
  }
  estimates.files = Math.max(0, (await sizeOf(host, app.dir)) - volumeBytes);
  let databaseBytes = 0;
  let databaseExtensions: ExtensionOwner[] | undefined;
  if (engine && databaseName) {
    const sql = createSqlClient(host, engine.clientArgv);
    databaseBytes = await engine.databaseBytes(sql, databaseName);
    // What cannot arrive as the source has it is named here, in --plan and the run, before any byte moves.
    if (engine.readExtensionOwners && (await engine.databaseExists(sql, databaseName))) {
      const read = await engine.readExtensionOwners(sql, databaseName, app.manifest.database.roles ?? []);
      databaseExtensions = read.extensions;
      notes.push(...read.notes);
    }
    estimates.database = databaseBytes;
    estimates.roles = 4096;
    estimates.grants = 4096;
  }
  if (options.withHistory) estimates.history = await sizeOf(host, borgEnv.BORG_REPO ?? '');
  return {
    ...(engine ? { engine } : {}),
    borgEnv,
    latestArchive,
    archiveHasDump,
    fidelity,
    special: specialFiles,
    estimates,
    databaseBytes,
    ...(databaseExtensions ? { databaseExtensions } : {}),
    notes,
  };
}
