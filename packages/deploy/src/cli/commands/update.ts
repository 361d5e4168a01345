import { resolve } from 'node:path';
import { EXIT_CODES } from '@deploykit/core';
import { loadApp } from '../../actions/load-app.js';
import { updateApp } from '../../actions/update-app.js';
import type { DeployCommand } from '../deploy-command.js';
import { renderTable } from '../table.js';
import { renderCheckTable } from './health.js';

/** `deploy update <app>`: safety backup, new version, restart, health; automatic rollback when it fails. */
export const updateCommand: DeployCommand = {
  command: 'update <app>',
  recordsRun: true,
  describe:
    'Update an app safely: backup, bin/update (or bin/install), restart, health; roll back automatically on failure',
  builder: (y) =>
    y.positional('app', { type: 'string', describe: 'App name', demandOption: true }).option('from', {
      type: 'string',
      describe: 'Folder holding the new version (copied over the app folder except volumes and secrets)',
    }),
  examples: [
    ['deploy update notes', "Run notes' bin/update (or bin/install), restart, check; roll back if a check fails"],
    ['deploy update notes --from /srv/releases/notes-1.4', 'Install the files of that folder as the new version'],
  ],
  async run(context, args) {
    const app = await loadApp(context.hostContext.appsRoot, String(args.app));
    const result = await updateApp(context, app, typeof args.from === 'string' ? { from: resolve(args.from) } : {});
    const lines = [
      renderTable(
        ['STEP', 'RESULT', 'TIME', 'DETAIL'],
        result.steps.map((s) => [
          s.step,
          s.status === 'ok' ? 'ok' : s.status.toUpperCase(),
          `${(s.durationMs / 1000).toFixed(1)} s`,
          s.detail ?? '',
        ]),
      ),
    ];
    if (result.health.length > 0) lines.push('', 'health of the new version:', renderCheckTable(result.health));
    if (result.rollbackHealth.length > 0)
      lines.push('', 'health after the rollback:', renderCheckTable(result.rollbackHealth));
    const headline: Record<typeof result.status, string> = {
      updated: `${app.name} updated; every check passed (safety archive ${result.archive})`,
      failed: `UPDATE FAILED before any change: ${result.reason ?? ''}`,
      'rolled-back': `UPDATE ROLLED BACK: ${result.reason ?? ''}`,
      'rollback-failed': `UPDATE FAILED AND THE ROLLBACK FAILED: ${result.reason ?? ''} Restore by hand: deploy restore ${app.name} --archive ${result.archive}; the previous folder is in ${result.snapshotDir}/app`,
    };
    lines.push('', headline[result.status]);
    const exitCode =
      result.status === 'updated'
        ? EXIT_CODES.ok
        : result.status === 'rolled-back'
          ? EXIT_CODES.checks
          : EXIT_CODES.script;
    return { exitCode, json: { ok: result.status === 'updated', ...result }, text: lines.join('\n') };
  },
};
