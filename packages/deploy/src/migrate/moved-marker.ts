import { readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * The mark a finished cutover leaves on the source: the app lives on another host now. `deploy
 * start` and `deploy maintenance off` refuse it without --force (a second copy taking writes would
 * split the data), `deploy list` shows it. Kept in `<state>/apps/<app>/moved.json`.
 */
export interface MovedMarker {
  readonly to: string;
  readonly runId: string;
  readonly at: string;
  readonly archive: string;
}

export function movedMarkerPath(stateDir: string, app: string): string {
  return join(stateDir, 'apps', app, 'moved.json');
}

/** The app's moved mark on this host, or undefined. */
export async function readMovedMarker(stateDir: string, app: string): Promise<MovedMarker | undefined> {
  const text = await readFile(movedMarkerPath(stateDir, app), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<MovedMarker>;
    return typeof parsed.to === 'string'
      ? {
          to: parsed.to,
          runId: String(parsed.runId ?? ''),
          at: String(parsed.at ?? ''),
          archive: String(parsed.archive ?? ''),
        }
      : undefined;
  } catch {
    return undefined;
  }
}

export async function writeMovedMarker(stateDir: string, app: string, marker: MovedMarker): Promise<void> {
  const path = movedMarkerPath(stateDir, app);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(marker)}\n`, { mode: 0o644 });
}

export async function clearMovedMarker(stateDir: string, app: string): Promise<void> {
  await rm(movedMarkerPath(stateDir, app), { force: true });
}
