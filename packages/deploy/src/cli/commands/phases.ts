import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Phase } from '@deploykit/core';
import { ConfigError, ConflictError, EXIT_CODES, UsageError } from '@deploykit/core';
import { clearMovedMarker, readMovedMarker } from '../../migrate/moved-marker.js';
import { abandonPendingCutover } from '../../migrate/paired-cutover.js';
import type { CommandContext } from '../command-context.js';
import { phaseExitCode, renderPhaseSummary, runPhaseForApps, selectApps } from '../../actions/phase-action.js';
import type { DeployCommand } from '../deploy-command.js';

/** A cutover moved the app to another host: starting (or resuming writes of) the copy here would split its data. */
async function refuseMoved(stateDir: string, app: string, what: string): Promise<void> {
  const moved = await readMovedMarker(stateDir, app);
  if (moved === undefined) return;
  throw new ConflictError(
    'APP_MOVED',
    `${app} was cut over to ${moved.to} (${moved.at}, run ${moved.runId}): it lives there now`,
    {
      hint: `A second copy taking writes here would split its data. If you mean it (e.g. moving back), run deploy ${what} ${app} --force; it removes the moved mark.`,
    },
  );
}

/**
 * Writes resumed here while a paired cutover waited for its verdict (the new host rolled back, its
 * report said to run this): the cutover can no longer be confirmed, and the run record says why.
 */
async function abandonPending(context: CommandContext, app: string, how: string): Promise<void> {
  const pending = await abandonPendingCutover(context.hostContext.stateDir, app, how);
  if (pending === undefined) return;
  context.bus.emit('cutover.abandoned', {
    app,
    level: 'warn',
    message: `${app} takes writes here again: the pending cutover to ${pending.to} (run ${pending.runId}) can no longer be confirmed; run a new one when the new host is ready`,
  });
}

function phaseCommand(phase: Phase, describe: string, examples: readonly (readonly [string, string])[]): DeployCommand {
  return {
    command: `${phase} [apps..]`,
    describe,
    examples,
    recordsRun: true,
    builder: (y) => {
      const common = y
        .positional('apps', { type: 'string', array: true, describe: 'App names' })
        .option('all', { type: 'boolean', default: false, describe: 'Every valid app under the apps root' });
      return phase === 'start'
        ? common.option('force', {
            type: 'boolean',
            default: false,
            describe:
              'Start an app even though a cutover moved it to another host (two copies taking writes split the data)',
          })
        : common;
    },
    async run(context, args) {
      const names = (args.apps as string[] | undefined) ?? [];
      if (names.length === 0 && args.all !== true) {
        throw new UsageError('APP_REQUIRED', `name at least one app for ${phase}, or pass --all`, {
          hint: `deploy ${phase} <app>; \`deploy list\` shows the apps.`,
        });
      }
      const apps = await selectApps(context, names, args.all === true, phase);
      if (phase === 'start' && args.force !== true)
        for (const app of apps) await refuseMoved(context.hostContext.stateDir, app.name, 'start');
      const summary = await runPhaseForApps(context, phase, apps);
      if (phase === 'start' && args.force === true)
        for (const result of summary.results)
          if (result.status === 'ok') await clearMovedMarker(context.hostContext.stateDir, result.app);
      if (phase === 'start')
        for (const result of summary.results)
          if (result.status === 'ok') await abandonPending(context, result.app, 'deploy start');
      return { exitCode: phaseExitCode(summary), json: summary, text: renderPhaseSummary(summary) };
    },
  };
}

/** `deploy install|start|stop|backup`: run the app's own bin/<phase> with the DEPLOY_* environment. */
export const phaseCommands: readonly DeployCommand[] = [
  phaseCommand('install', "Run each app's bin/install (dependencies, database, roles; idempotent)", [
    ['deploy install notes', 'Install the notes app on this host'],
    ['deploy install notes --host b', 'The same on host b'],
  ]),
  phaseCommand('start', 'Start apps with their bin/start', [
    ['deploy start notes', 'Start notes'],
    ['deploy start --all', 'Start every app'],
  ]),
  phaseCommand('stop', 'Stop apps with their bin/stop (exit 75 = was not running)', [
    ['deploy stop notes', 'Stop notes'],
  ]),
  phaseCommand('backup', 'Make a fresh Borg archive of each app (volumes and database) with its bin/backup', [
    ['deploy backup notes', "Archive named notes-<UTC time> in the app's Borg repository"],
    ['deploy backup --all --json', 'Every app, results as JSON'],
  ]),
];

/** `deploy restore <app> [--archive NAME]`: bring volumes and database back from a Borg archive. */
export const restoreCommand: DeployCommand = {
  command: 'restore <app>',
  describe: "Restore an app's volumes and database from a Borg archive with its bin/restore",
  recordsRun: true,
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('archive', { type: 'string', describe: 'Archive name (default: the latest)' }),
  examples: [
    ['deploy restore notes', 'From the latest archive'],
    ['deploy restore notes --archive notes-20261121T201500Z', 'From a named archive'],
  ],
  async run(context, args) {
    const apps = await selectApps(context, [String(args.app)], false);
    const summary = await runPhaseForApps(
      context,
      'restore',
      apps,
      typeof args.archive === 'string' ? { archive: args.archive } : {},
    );
    return { exitCode: phaseExitCode(summary), json: summary, text: renderPhaseSummary(summary) };
  },
};

/**
 * `deploy maintenance <app> on|off`: the app's bin/maintenance (docs/app-folder.md): on = a 503 page
 * and no write in flight when it returns, off = serving again. An app without the script cannot do
 * that while running, which is an error here (not the "optional, skipped" of other phases), and so
 * is a script exiting 75: the mode was not reached.
 */
export const maintenanceCommand: DeployCommand = {
  command: 'maintenance <app> <mode>',
  describe: 'Stop or resume an app taking writes without stopping it: its bin/maintenance on (a 503 page) or off',
  recordsRun: true,
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .positional('mode', {
        type: 'string',
        choices: ['on', 'off'],
        describe: 'on: answer 503 and take no writes; off: serve again',
        demandOption: true,
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'off: serve again even though a cutover moved the app to another host (removes the moved mark)',
      }),
  examples: [
    [
      'deploy maintenance notes on',
      'notes answers 503 with a page; when this returns, no request that writes is running',
    ],
    ['deploy maintenance notes off', 'notes serves again'],
  ],
  async run(context, args) {
    const mode = String(args.mode);
    if (mode !== 'on' && mode !== 'off')
      throw new UsageError('MAINTENANCE_MODE', `maintenance mode must be on or off, not ${JSON.stringify(mode)}`, {
        hint: 'deploy maintenance <app> on|off',
      });
    const apps = await selectApps(context, [String(args.app)], false);
    const app = apps[0]!;
    if (mode === 'off' && args.force !== true)
      await refuseMoved(context.hostContext.stateDir, app.name, 'maintenance off');
    const script = join(app.dir, 'bin', 'maintenance');
    if (
      !(await access(script, constants.X_OK).then(
        () => true,
        () => false,
      ))
    ) {
      throw new ConfigError(
        'MAINTENANCE_SCRIPT_MISSING',
        `${app.name} has no executable bin/maintenance, so it cannot stop taking writes while it runs`,
        {
          hint: `Add bin/maintenance on|off to ${app.dir} (docs/app-folder.md, "bin/maintenance"), or stop the app: deploy stop ${app.name}`,
        },
      );
    }
    const summary = await runPhaseForApps(context, 'maintenance', apps, { args: [mode] });
    if (mode === 'off' && args.force === true && summary.results.every((result) => result.status === 'ok'))
      await clearMovedMarker(context.hostContext.stateDir, app.name);
    if (mode === 'off' && summary.results.every((result) => result.status === 'ok'))
      await abandonPending(context, app.name, 'deploy maintenance off');
    const notReached = summary.results.some((result) => result.status === 'skipped' && result.reason !== 'dry run');
    return {
      exitCode: notReached ? EXIT_CODES.script : phaseExitCode(summary),
      json: { ...summary, mode },
      text: renderPhaseSummary(summary),
    };
  },
};
