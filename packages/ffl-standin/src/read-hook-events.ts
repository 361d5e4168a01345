import { readFileSync } from 'node:fs';

/** One line of an ffl JSONL hook file. */
export interface FflHookEvent {
  readonly event: string;
  readonly timestamp: string;
  readonly data: Record<string, unknown>;
}

/** Parses an ffl hook file, ignoring a partial last line (the writer may still be appending). */
export function readHookEventFile(path: string): FflHookEvent[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const events: FflHookEvent[] = [];
  for (const line of lines) {
    if (line.trim() === '') continue;
    try {
      events.push(JSON.parse(line) as FflHookEvent);
    } catch {
      // A torn last line while tailing; the next read sees it whole.
    }
  }
  return events;
}
