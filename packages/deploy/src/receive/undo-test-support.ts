import { EventBus, type Host } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import { undoActions } from './recover-runs.js';
import { summariseRun, TargetJournal } from './target-journal.js';
import type { UndoEnvironment } from './undo.js';

/** For unit tests: undoes every pending action of a target journal on this machine, as a rollback would. */
export async function undoAll(
  journal: TargetJournal,
  host: Host = new LocalHost('test'),
): Promise<{ undone: string[]; failed: string[] }> {
  const environment = {
    host,
    hostContext: {
      hostName: 'test',
      hostAddress: '127.0.0.1',
      appsRoot: '/nonexistent',
      stateDir: '/nonexistent',
      logLevel: 'info',
      dryRun: false,
    },
    bus: new EventBus({ runId: 'test', host: 'test' }, { keep: false }),
    runId: 'test',
  } as UndoEnvironment;
  const run = summariseRun(journal.path, await TargetJournal.read(journal.path));
  return undoActions(environment, journal, run.pending);
}
