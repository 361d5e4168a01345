import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { engineOfKind } from '../database/engines.js';
import { createSqlClient } from '../database/sql-client.js';
import { isHolderAlive } from '../migrate/app-lock.js';
import { partDir, partDirName, type TargetLayout } from './target-plan.js';
import { listRecordedRuns, TargetJournal, type RecordedRun, type UndoAction } from './target-journal.js';
import { describeUndo, pathExists, performUndo, stopRunProcesses, type UndoEnvironment } from './undo.js';

/** The environment with the database engine the run's record names (its undo actions need it). */
function withEngineOf<T extends Omit<UndoEnvironment, 'runId'>>(environment: T, run: Pick<RecordedRun, 'engine'>): T {
  if (environment.engine !== undefined) return environment;
  const engine = engineOfKind(run.engine);
  return engine ? { ...environment, engine, sql: createSqlClient(environment.host, engine.clientArgv) } : environment;
}

/** What undoing a list of actions did: the lines for the report, and what could not be undone. */
export interface UndoOutcome {
  readonly undone: string[];
  readonly failed: string[];
}

/**
 * Undoes pending actions of a run in reverse order, journaling each in that run's record. `keep`
 * says which resumable actions to leave (verified parts kept for a resume); a failing undo is
 * recorded and the rest still run.
 */
export async function undoActions(
  environment: UndoEnvironment,
  journal: TargetJournal,
  pending: readonly { readonly id: number; readonly action: UndoAction }[],
  keep: (action: UndoAction) => boolean = () => false,
  onUndo?: (line: string, ok: boolean) => void,
): Promise<UndoOutcome> {
  const undone: string[] = [];
  const failed: string[] = [];
  for (const { id, action } of [...pending].reverse()) {
    if (keep(action)) continue;
    try {
      const changed = await performUndo(environment, action);
      journal.write({ t: 'undone', id, ok: true });
      if (changed) {
        undone.push(describeUndo(action));
        onUndo?.(describeUndo(action), true);
      }
    } catch (error) {
      const message = (error as Error).message;
      journal.write({ t: 'undone', id, ok: false, message });
      failed.push(`${describeUndo(action)}: ${message}`);
      onUndo?.(`${describeUndo(action)} FAILED: ${message}`, false);
    }
  }
  return { undone, failed };
}

/** Parts of a run that a resume may reuse: verified, and made from the archive alone. */
export function reusableParts(run: Pick<RecordedRun, 'verifiedParts'>): RecordedRun['verifiedParts'] {
  return run.verifiedParts.filter((part) => part.fromArchive);
}

/** True for the resumable actions that hold `parts` (the staging root with their dirs, the staging database). */
export function holdsKeptParts(action: UndoAction, parts: readonly string[], layout: TargetLayout): boolean {
  if (action.kind === 'remove-path' && action.resumable === true)
    return action.path === layout.stagingRoot && parts.length > 0;
  if (action.kind === 'drop-database' && action.resumable === true) return parts.includes('database');
  return false;
}

/** Removes everything under a staging root's parts/ except the dirs of `keep` (and the root's other leftovers). */
export async function pruneStaging(layout: TargetLayout, keep: readonly string[]): Promise<string[]> {
  const removed: string[] = [];
  const kept = new Set(keep.map(partDirName));
  for (const name of await readdir(join(layout.stagingRoot, 'parts')).catch(() => [] as string[])) {
    if (kept.has(name)) continue;
    await rm(join(layout.stagingRoot, 'parts', name), { recursive: true, force: true });
    removed.push(join(layout.stagingRoot, 'parts', name));
  }
  return removed;
}

/** One earlier run as recovery left it. */
export interface RecoveredRun {
  readonly runId: string;
  /** `undone`: rolled back entirely; `kept`: its verified parts wait for this run to reuse or discard them. */
  readonly outcome: 'undone' | 'kept';
  readonly processesStopped: number;
  readonly undone: readonly string[];
  readonly failed: readonly string[];
  readonly keptParts: readonly string[];
}

/**
 * Cleans up what earlier target-side runs of this app left on this host, found by their run
 * records: a run that was killed (no end line) or kept parts for a resume. Its processes (found by
 * run id) are stopped and its pending undo actions run in reverse; the verified, archive-made parts
 * of the newest such run are kept as the resume candidate. The caller holds the app's lock, so no
 * earlier run is still alive unless its record says a live pid (then it is left alone).
 */
export async function recoverEarlierRuns(
  environment: Omit<UndoEnvironment, 'runId'>,
  app: string,
  currentRunId: string,
  layoutOf: (runId: string) => TargetLayout,
): Promise<{ recovered: RecoveredRun[]; candidate?: RecordedRun }> {
  const runs = (await listRecordedRuns(environment.hostContext.stateDir, app)).filter(
    (run) => run.runId !== currentRunId,
  );
  const open = runs.filter(
    (run) =>
      run.outcome === undefined ||
      run.outcome === 'kept-for-resume' ||
      (run.outcome === 'rolled-back' && run.pending.length > 0),
  );
  const live = (run: RecordedRun): boolean =>
    run.outcome === undefined &&
    run.pid > 0 &&
    isHolderAlive({ pid: run.pid, startTicks: run.startTicks } as Parameters<typeof isHolderAlive>[0]);
  const withParts = open.filter((run) => !live(run) && reusableParts(run).length > 0);
  const candidate = withParts.at(-1);
  const recovered: RecoveredRun[] = [];
  for (const run of open) {
    if (live(run)) continue;
    const journal = new TargetJournal(run.path);
    const runEnvironment = withEngineOf(environment, run);
    // The input's processes carry the receiving command's own id when the run's was not known yet (pairing).
    let processesStopped = await stopRunProcesses(run.runId);
    if (run.input !== undefined && run.input.runId !== run.runId)
      processesStopped += await stopRunProcesses(run.input.runId);
    for (const path of run.input?.paths ?? []) await rm(path, { recursive: true, force: true });
    const keep = run === candidate ? reusableParts(run).map((part) => part.part) : [];
    const layout = layoutOf(run.runId);
    if (keep.length > 0) await pruneStaging(layout, keep);
    const result = await undoActions({ ...runEnvironment, runId: run.runId }, journal, run.pending, (action) =>
      holdsKeptParts(action, keep, layout),
    );
    if (keep.length === 0) journal.write({ t: 'end', outcome: 'recovered', by: currentRunId });
    recovered.push({
      runId: run.runId,
      outcome: keep.length > 0 ? 'kept' : 'undone',
      processesStopped,
      undone: result.undone,
      failed: result.failed,
      keptParts: keep,
    });
  }
  return { recovered, ...(candidate === undefined ? {} : { candidate }) };
}

/**
 * Takes over the kept parts of an earlier run: its staging root and staging database are renamed to
 * this run's names (so leftovers are found by this run's id from now on) and its record says so.
 */
export async function adoptRun(
  environment: UndoEnvironment,
  run: RecordedRun,
  from: TargetLayout,
  to: TargetLayout,
): Promise<string[]> {
  const journal = new TargetJournal(run.path);
  const parts = reusableParts(run).map((part) => part.part);
  if (await pathExists(from.stagingRoot)) {
    await rm(to.stagingRoot, { recursive: true, force: true });
    await rename(from.stagingRoot, to.stagingRoot);
  }
  // A renaming engine's verified database is the staging database: it takes this run's name too.
  const staging = environment.engine?.staging;
  if (
    parts.includes('database') &&
    staging?.kind === 'rename' &&
    environment.sql &&
    (await environment.engine!.databaseExists(environment.sql, from.stageDatabase))
  ) {
    await staging.moveDatabase(environment.sql, from.stageDatabase, to.stageDatabase);
  }
  for (const { id } of run.pending)
    journal.write({ t: 'undone', id, ok: true, message: `adopted by run ${environment.runId}` });
  journal.write({ t: 'end', outcome: 'adopted', by: environment.runId });
  const held: string[] = [];
  for (const part of parts) if (part === 'database' || (await pathExists(partDir(to, part)))) held.push(part);
  return held;
}

/** Rolls back a kept run entirely (its parts are not reused). */
export async function discardRun(
  environment: Omit<UndoEnvironment, 'runId'>,
  app: string,
  run: RecordedRun,
  currentRunId: string,
): Promise<UndoOutcome> {
  const journal = new TargetJournal(run.path);
  // Read it again: recovery undid part of it since `run` was read.
  const fresh =
    (await listRecordedRuns(environment.hostContext.stateDir, app)).find((r) => r.runId === run.runId) ?? run;
  const result = await undoActions({ ...withEngineOf(environment, run), runId: run.runId }, journal, fresh.pending);
  journal.write({ t: 'end', outcome: 'recovered', by: currentRunId });
  return result;
}
