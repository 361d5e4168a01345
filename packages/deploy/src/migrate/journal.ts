import { appendFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** One line of a migration's run record. */
export interface JournalEntry {
  readonly time: string;
  readonly step: string;
  readonly status: 'start' | 'ok' | 'failed' | 'skipped' | 'rollback';
  readonly argv?: string;
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** The folder of an app's migration run records on the source. */
export function journalDir(stateDir: string, app: string): string {
  return join(stateDir, 'apps', app, 'migrations');
}

/** Path of a migration's run record (JSON lines). */
export function journalPath(stateDir: string, app: string, runId: string): string {
  return join(journalDir(stateDir, app), `${runId}.jsonl`);
}

/**
 * Every migration run record of an app on this host, oldest first (run ids sort by time), each with
 * its lines; a record that cannot be read counts as empty.
 */
export async function readRunRecords(
  stateDir: string,
  app: string,
): Promise<{ runId: string; lines: JournalEntry[] }[]> {
  const dir = journalDir(stateDir, app);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((file) => file.endsWith('.jsonl')).sort();
  return Promise.all(
    names.map(async (name) => ({
      runId: name.slice(0, -'.jsonl'.length),
      lines: await Journal.read(join(dir, name)).catch(() => [] as JournalEntry[]),
    })),
  );
}

/** Appends to a run record; every step start and end lands on disk before the next one begins. */
export class Journal {
  readonly path: string;
  constructor(path: string) {
    this.path = path;
  }
  async write(entry: Omit<JournalEntry, 'time'>): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    await appendFile(this.path, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`, { mode: 0o600 });
  }
  /** Reads a run record back. */
  static async read(path: string): Promise<JournalEntry[]> {
    const text = await readFile(path, 'utf8');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as JournalEntry);
  }
}
