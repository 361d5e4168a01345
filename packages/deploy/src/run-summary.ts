import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The record of one finished run of a command that changes something (`<state>/runs/<run id>.json`,
 * mode 0600): what ran, on which app, to where, how it ended, and its report as it was printed
 * (`text`) and as --json gives it (`json`), so `deploy runs show` can print it again.
 */
export interface RunSummary {
  readonly runId: string;
  /** The verb: migrate, backup, restore, update, remove, ... */
  readonly command: string;
  readonly apps: readonly string[];
  /** Where the run went (migrate --to), when it went somewhere. */
  readonly target?: string;
  readonly outcome: 'ok' | 'failed' | 'interrupted';
  readonly exitCode: number;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly deployVersion: string;
  readonly text?: string;
  readonly json?: unknown;
}

/** The folder of the run summaries of a state dir. */
export function runsDir(stateDir: string): string {
  return join(stateDir, 'runs');
}

/** Writes a run's summary; throws when the state dir cannot take it (the caller decides whether that matters). */
export async function writeRunSummary(stateDir: string, summary: RunSummary): Promise<string> {
  const dir = runsDir(stateDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${summary.runId}.json`);
  await writeFile(path, `${JSON.stringify(summary, null, 2)}\n`, { mode: 0o600 });
  return path;
}

/** Reads every run summary of a state dir, oldest first; unreadable or torn files are skipped. */
export async function readRunSummaries(stateDir: string): Promise<RunSummary[]> {
  const dir = runsDir(stateDir);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((name) => name.endsWith('.json')).sort();
  const summaries: RunSummary[] = [];
  for (const name of names) {
    try {
      const value = JSON.parse(await readFile(join(dir, name), 'utf8')) as RunSummary;
      if (typeof value.runId === 'string' && typeof value.command === 'string') summaries.push(value);
    } catch {
      // a run killed while writing its summary; the others still list
    }
  }
  return summaries.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}
