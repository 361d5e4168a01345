import { appendFileSync, mkdirSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DatabaseEngine } from '../database/engine.js';

/**
 * One thing a target-side run did, as the action that undoes it. Written to the run record BEFORE
 * the run does the thing (write-ahead), so a run killed at any point can be undone by the next one;
 * every undo is idempotent (it checks what is there before it acts).
 */
export type UndoAction =
  /** Remove a folder the run made. `resumable`: kept when only the input was lost (staging with verified parts). */
  | { readonly kind: 'remove-path'; readonly path: string; readonly resumable?: boolean }
  /** Put a set-aside folder back: only when `from` exists and `to` does not. */
  | { readonly kind: 'rename-path'; readonly from: string; readonly to: string }
  /** Drop a database the run made. */
  | { readonly kind: 'drop-database'; readonly name: string; readonly resumable?: boolean }
  /** Put a set-aside database back: only when `from` exists and `to` does not. */
  | { readonly kind: 'rename-database'; readonly from: string; readonly to: string }
  /** Put a database back from the whole dump it was kept aside as (it replaces what is there). */
  | { readonly kind: 'restore-database'; readonly name: string; readonly file: string }
  /** Drop the accounts of these roles that did not exist before the run. */
  | { readonly kind: 'drop-new-accounts'; readonly roles: readonly string[]; readonly existing: readonly string[] }
  /** Re-apply the SQL snapshot (0600 file) of accounts as they were before the run altered them. */
  | { readonly kind: 'restore-accounts'; readonly file: string }
  /** Stop the app the run started (bin/stop), then every process of the run. */
  | { readonly kind: 'stop-app'; readonly dir: string }
  /** Start the replaced app again once its folder is back (bin/start). */
  | { readonly kind: 'start-app'; readonly dir: string }
  /** Put an entry's mode and owner back (a cutover changed them); a symlink: its owner only. */
  | {
      readonly kind: 'set-mode';
      readonly path: string;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
      readonly symlink: boolean;
    }
  /** Put a directory's modification time back, to the nanosecond (a cutover's renames in it moved it). */
  | { readonly kind: 'set-mtime'; readonly path: string; readonly ns: string }
  /** Make the xattrs/ACLs under dir exactly the getfattr dump in file again (a cutover set the source's). */
  | { readonly kind: 'restore-xattrs'; readonly dir: string; readonly file: string };

/** How a target-side run ended. */
export type TargetOutcome = 'finished' | 'rolled-back' | 'kept-for-resume' | 'recovered' | 'adopted';

/** One line of a target-side run record (`<state>/apps/<app>/incoming/<run id>.jsonl`). */
export type TargetJournalLine =
  | {
      readonly t: 'run';
      readonly deployVersion?: string;
      readonly app: string;
      readonly runId: string;
      readonly source: string;
      readonly pid: number;
      readonly startTicks: number;
      readonly parts: readonly string[];
      readonly engine?: DatabaseEngine['kind'];
    }
  /**
   * What the input of the run made before the run knew its id (an ffl download and its temp dir, found
   * by the receiving command's own run id): a later run stops and removes them if this one is killed.
   */
  | { readonly t: 'input'; readonly runId: string; readonly paths: readonly string[] }
  | { readonly t: 'archive'; readonly archive: string }
  | {
      readonly t: 'plan';
      readonly steps: readonly {
        readonly id: string;
        readonly kind: string;
        readonly title: string;
        readonly commands: readonly string[];
      }[];
    }
  | {
      readonly t: 'step';
      readonly step: string;
      readonly status: 'start' | 'ok' | 'failed' | 'reused';
      readonly detail?: Readonly<Record<string, unknown>>;
    }
  | { readonly t: 'command'; readonly step: string; readonly argv: string }
  | { readonly t: 'undo'; readonly id: number; readonly action: UndoAction }
  | { readonly t: 'undone'; readonly id: number; readonly ok: boolean; readonly message?: string }
  | { readonly t: 'cancel'; readonly id: number }
  | {
      readonly t: 'part';
      readonly part: string;
      readonly bytes: number;
      readonly sha256: string;
      readonly archive: string;
      readonly fromArchive: boolean;
    }
  /** The parts were put together into the staged app: from here on none of them can be reused alone. */
  | { readonly t: 'assembled' }
  | { readonly t: 'end'; readonly outcome: TargetOutcome; readonly by?: string };

/** A line as stored: with its time. */
export type StoredLine = TargetJournalLine & { readonly time: string };

/** Path of the folder holding the target-side run records of an app. */
export function incomingDir(stateDir: string, app: string): string {
  return join(stateDir, 'apps', app, 'incoming');
}

/**
 * The run record of a target-side run: append-only JSON lines, each flushed to the file before the
 * run goes on (appendFileSync), so the record is exactly as far as the run got when it was killed.
 */
export class TargetJournal {
  readonly path: string;
  #nextUndo = 1;
  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
  }

  /** Appends a line. */
  write(line: TargetJournalLine): void {
    appendFileSync(this.path, `${JSON.stringify({ time: new Date().toISOString(), ...line })}\n`, { mode: 0o600 });
  }

  /** Records what undoes the next action (before doing it); returns the undo's id (to cancel it). */
  undo(action: UndoAction): number {
    const id = this.#nextUndo;
    this.#nextUndo += 1;
    this.write({ t: 'undo', id, action });
    return id;
  }

  /** Reads a run record back (a torn last line from a kill is ignored). */
  static async read(path: string): Promise<StoredLine[]> {
    const text = await readFile(path, 'utf8');
    const lines: StoredLine[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        lines.push(JSON.parse(line) as StoredLine);
      } catch {
        // The run was killed while writing this line: everything before it stands.
      }
    }
    return lines;
  }
}

/** What a run record says about its run: for recovery and resume. */
export interface RecordedRun {
  readonly runId: string;
  readonly path: string;
  readonly pid: number;
  readonly startTicks: number;
  /** The database engine of the app (its undo actions need it). */
  readonly engine?: DatabaseEngine['kind'];
  readonly outcome?: TargetOutcome;
  readonly archive?: string;
  /** Undo actions not yet undone nor cancelled, in the order they were recorded. */
  readonly pending: readonly { readonly id: number; readonly action: UndoAction }[];
  /** Parts verified in staging (the last record per part wins). */
  readonly verifiedParts: readonly Extract<TargetJournalLine, { t: 'part' }>[];
  /** The input's own processes (by this run id) and temp paths, when they differ from the run's. */
  readonly input?: { readonly runId: string; readonly paths: readonly string[] };
}

/** Summarises a run record. */
export function summariseRun(path: string, lines: readonly StoredLine[]): RecordedRun {
  const run = lines.find((line): line is Extract<StoredLine, { t: 'run' }> => line.t === 'run');
  const undone = new Set(
    lines.flatMap((line) => (line.t === 'undone' && line.ok ? [line.id] : line.t === 'cancel' ? [line.id] : [])),
  );
  const pending = lines.flatMap((line) =>
    line.t === 'undo' && !undone.has(line.id) ? [{ id: line.id, action: line.action }] : [],
  );
  const ends = lines.filter((line): line is Extract<StoredLine, { t: 'end' }> => line.t === 'end');
  const parts = new Map<string, Extract<TargetJournalLine, { t: 'part' }>>();
  for (const line of lines) if (line.t === 'part') parts.set(line.part, line);
  if (lines.some((line) => line.t === 'assembled')) parts.clear();
  const archive = [...lines]
    .reverse()
    .find((line): line is Extract<StoredLine, { t: 'archive' }> => line.t === 'archive')?.archive;
  const input = lines.find((line): line is Extract<StoredLine, { t: 'input' }> => line.t === 'input');
  return {
    runId: run?.runId ?? path.replace(/^.*\//, '').replace(/\.jsonl$/, ''),
    path,
    pid: run?.pid ?? 0,
    startTicks: run?.startTicks ?? 0,
    ...(run?.engine ? { engine: run.engine } : {}),
    ...(ends.length > 0 ? { outcome: ends.at(-1)!.outcome } : {}),
    ...(archive === undefined ? {} : { archive }),
    ...(input === undefined ? {} : { input: { runId: input.runId, paths: input.paths } }),
    pending,
    verifiedParts: [...parts.values()],
  };
}

/** Every recorded target-side run of an app on this host, oldest first. */
export async function listRecordedRuns(stateDir: string, app: string): Promise<RecordedRun[]> {
  const dir = incomingDir(stateDir, app);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((name) => name.endsWith('.jsonl')).sort();
  const runs: RecordedRun[] = [];
  for (const name of names) runs.push(summariseRun(join(dir, name), await TargetJournal.read(join(dir, name))));
  return runs;
}
