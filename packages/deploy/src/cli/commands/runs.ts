import { EXIT_CODES, formatDuration, UsageError } from '@deploykit/core';
import { readRunSummaries, runsDir, type RunSummary } from '../../run-summary.js';
import type { DeployCommand } from '../deploy-command.js';
import { renderTable } from '../table.js';

/** One row of `deploy runs`: when, what, on which app, to where, how it ended and how long it took. */
function describeRun(run: RunSummary): string[] {
  return [
    run.runId,
    run.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    run.command,
    run.apps.join(',') || '-',
    run.target ?? '-',
    run.outcome === 'ok' ? 'ok' : `${run.outcome} (exit ${run.exitCode})`,
    formatDuration(run.durationMs),
  ];
}

/**
 * `deploy runs [app]`: the runs this host made (migrate, backup, restore, update, remove, ...), from
 * their run summaries; `deploy runs show <run id>` prints one run's report again (`--json`: as recorded).
 */
export const runsCommand: DeployCommand = {
  command: 'runs [app] [run]',
  describe:
    'List past runs (migrate, backup, restore, update, ...) and their outcome; `runs show <id>` prints a report again',
  examples: [
    ['deploy runs', 'Every recorded run on this host, oldest first'],
    ['deploy runs notes', 'The runs of app notes'],
    [
      'deploy runs show 20261202T061500Z-3fa9c1',
      "That run's report, as printed at its end (--json: as its --json gave it)",
    ],
  ],
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'Only the runs of this app (or `show` to print one run)' })
      .positional('run', { type: 'string', describe: 'With show: the run id' })
      .option('last', { type: 'number', describe: 'Only the newest N runs' }),
  async run(context, args) {
    const stateDir = context.hostContext.stateDir;
    const runs = await readRunSummaries(stateDir);
    if (args.app === 'show') {
      const id = typeof args.run === 'string' ? args.run : '';
      if (id === '')
        throw new UsageError('RUNS_SHOW_NO_ID', 'name the run to show: deploy runs show <run id>', {
          hint: '`deploy runs` lists the run ids.',
        });
      const run =
        runs.find((candidate) => candidate.runId === id) ??
        (id.length >= 6 ? runs.filter((candidate) => candidate.runId.startsWith(id)) : []).at(-1);
      if (run === undefined)
        throw new UsageError('RUN_UNKNOWN', `no run ${id} in ${runsDir(stateDir)}`, {
          hint: '`deploy runs` lists the recorded runs (older runs than this deploy version recorded none).',
        });
      return {
        exitCode: EXIT_CODES.ok,
        json: run.json ?? run,
        text:
          run.text ??
          `${run.command} ${run.apps.join(' ')}: ${run.outcome} (exit ${run.exitCode}); no report was printed`,
      };
    }
    if (args.run !== undefined)
      throw new UsageError('RUNS_ARGS', `unexpected argument ${String(args.run)}`, {
        hint: 'deploy runs [app], or deploy runs show <run id>.',
      });
    const app = typeof args.app === 'string' ? args.app : undefined;
    let selected = app === undefined ? runs : runs.filter((run) => run.apps.includes(app));
    if (typeof args.last === 'number' && args.last > 0) selected = selected.slice(-args.last);
    const rows = selected.map(({ text: _text, json: _json, ...run }) => run);
    const text =
      rows.length === 0
        ? `no recorded runs${app ? ` of ${app}` : ''} in ${runsDir(stateDir)}`
        : renderTable(['RUN', 'STARTED', 'COMMAND', 'APP', 'TARGET', 'OUTCOME', 'TIME'], selected.map(describeRun));
    return { exitCode: EXIT_CODES.ok, json: { runs: rows }, text };
  },
};
