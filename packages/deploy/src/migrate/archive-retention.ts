import type { Host } from '@deploykit/core';
import { readRunRecords } from './journal.js';

/** Default of how many migration archives of an app its source keeps (docs/migrate.md, "Retention"). */
export const DEFAULT_KEEP_MIGRATION_ARCHIVES = 3;

/** What the run records of an app's migrations say about its archives. */
export interface MigrationArchiveRecords {
  /** Archives a migration's backup step made or used (names), in the order of the runs. */
  readonly made: readonly string[];
  /** Per target host: the archive of the newest finished (successful) migration there. */
  readonly finishedByTarget: Readonly<Record<string, string>>;
}

/**
 * Reads an app's source run records (`<state>/apps/<app>/migrations/*.jsonl`): which archives
 * migrations made, and which one the newest finished migration to each target used. Only an
 * archive named by a migration's own backup step counts as a migration archive, so the app's own
 * backups (`deploy backup`, cron) can never be taken for one, whatever the archive pattern.
 */
export async function readMigrationArchiveRecords(stateDir: string, app: string): Promise<MigrationArchiveRecords> {
  const made: string[] = [];
  const finishedByTarget: Record<string, string> = {};
  // Run ids sort by time: the later a run, the later it overwrites its target's entry.
  for (const { lines } of await readRunRecords(stateDir, app)) {
    for (const line of lines) {
      const archive = typeof line.detail?.archive === 'string' ? line.detail.archive : undefined;
      if (archive === undefined) continue;
      if (line.step === 'backup' && line.status === 'ok' && !made.includes(archive)) made.push(archive);
      if (line.step === 'finished' && line.status === 'ok' && typeof line.detail?.target === 'string')
        finishedByTarget[line.detail.target] = archive;
    }
  }
  return { made, finishedByTarget };
}

/** One archive in the repository, as `borg list --json` names it. */
export interface RepoArchive {
  readonly name: string;
  /** Start time (ISO, as borg prints it): the order of archives. */
  readonly start: string;
}

/** Which migration archives to delete and which to keep, and why. */
export interface RetentionChoice {
  readonly prune: readonly string[];
  /** Migration archives kept: the newest `keep`, plus each target's newest finished one. */
  readonly kept: readonly string[];
  /** Of the kept ones: those kept only because a finished migration to that target used them (a cutover needs them). */
  readonly protected: readonly string[];
}

/**
 * The retention rule, as data: of the archives in the repository that migrations made, keep the
 * newest `keep` and the newest finished migration's archive of every target; prune the rest.
 * Archives no migration made are never named.
 */
export function chooseMigrationArchivesToPrune(
  repo: readonly RepoArchive[],
  records: MigrationArchiveRecords,
  keep: number,
): RetentionChoice {
  const made = new Set(records.made);
  const migration = repo
    .filter((archive) => made.has(archive.name))
    .sort((x, y) => (x.start < y.start ? 1 : x.start > y.start ? -1 : y.name.localeCompare(x.name)));
  const newest = new Set(migration.slice(0, Math.max(0, keep)).map((archive) => archive.name));
  const finished = new Set(Object.values(records.finishedByTarget));
  const kept = migration
    .filter((archive) => newest.has(archive.name) || finished.has(archive.name))
    .map((archive) => archive.name);
  return {
    prune: migration
      .filter((archive) => !newest.has(archive.name) && !finished.has(archive.name))
      .map((archive) => archive.name),
    kept,
    protected: kept.filter((name) => !newest.has(name)),
  };
}

/** What pruning did after a migration (in the migrate report and its --json). */
export interface PruneReport {
  readonly keep: number;
  readonly pruned: readonly string[];
  readonly kept: readonly string[];
  /** Kept beyond `keep`: the archive of the newest finished migration to some target. */
  readonly protected: readonly string[];
  /** Whether `borg compact` freed the space of the pruned archives. */
  readonly compacted: boolean;
  /** Set when pruning (or compacting) failed: the migration still succeeded; the next one prunes again. */
  readonly error?: string;
}

/** How long borg waits for the repository lock (a backup may be running). */
const LOCK_WAIT_SECONDS = '60';

/**
 * Applies the retention to an app's repository: lists it, deletes the migration archives beyond
 * the rule (one `borg delete`), then `borg compact` so the space comes back (the source is usually
 * the host short of disk). Never throws: a failure is in the report.
 */
export async function pruneMigrationArchives(options: {
  host: Host;
  borgEnv: Readonly<Record<string, string>>;
  stateDir: string;
  app: string;
  keep: number;
}): Promise<PruneReport> {
  const { host, borgEnv, keep } = options;
  const empty = { keep, pruned: [], kept: [], protected: [], compacted: false };
  const tail = (text: string): string => text.trim().split('\n').slice(-2).join(' ');
  try {
    const records = await readMigrationArchiveRecords(options.stateDir, options.app);
    if (records.made.length === 0) return empty;
    const listed = await host.run({
      argv: ['borg', 'list', '--lock-wait', LOCK_WAIT_SECONDS, '--json'],
      env: { ...borgEnv },
    });
    if (listed.exitCode !== 0) return { ...empty, error: `borg list failed: ${tail(listed.stderr)}` };
    const repo = ((JSON.parse(listed.stdout) as { archives?: { name: string; start: string }[] }).archives ?? []).map(
      ({ name, start }) => ({ name, start }),
    );
    const choice = chooseMigrationArchivesToPrune(repo, records, keep);
    if (choice.prune.length === 0) return { ...empty, kept: choice.kept, protected: choice.protected };
    const deleted = await host.run({
      argv: ['borg', 'delete', '--lock-wait', LOCK_WAIT_SECONDS, `::${choice.prune[0]}`, ...choice.prune.slice(1)],
      env: { ...borgEnv },
    });
    if (deleted.exitCode !== 0)
      return {
        ...empty,
        kept: choice.kept,
        protected: choice.protected,
        error: `borg delete failed: ${tail(deleted.stderr)}`,
      };
    const compact = await host.run({
      argv: ['borg', 'compact', '--lock-wait', LOCK_WAIT_SECONDS],
      env: { ...borgEnv },
    });
    return {
      keep,
      pruned: choice.prune,
      kept: choice.kept,
      protected: choice.protected,
      compacted: compact.exitCode === 0,
      ...(compact.exitCode === 0
        ? {}
        : {
            error: `borg compact failed (the archives are deleted, their space is not free yet): ${tail(compact.stderr)}`,
          }),
    };
  } catch (error) {
    return { ...empty, error: (error as Error).message };
  }
}
