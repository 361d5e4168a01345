import { ConfigError, EXIT_CODES, formatBytes, UsageError, type DeployError } from '@deploykit/core';
import { discoverApps } from '@deploykit/manifest';
import { pickApp } from '../../actions/load-app.js';
import {
  planRemove,
  readLastRemoval,
  removeApp,
  type RemovePlan,
  type RemoveReport,
} from '../../actions/remove-app.js';
import type { DeployCommand } from '../deploy-command.js';

/** The plan for humans: everything that goes, everything that stays, and why. */
export function renderRemovePlan(plan: RemovePlan): string {
  const lines = [`deploy remove ${plan.app} on ${plan.host} would:`];
  lines.push(`  1. stop it (bin/stop) and check that nothing of it still runs`);
  lines.push(
    plan.backup
      ? `  2. make a last backup: archive ${plan.backup.archive} (after the stop, so it holds the last write)`
      : '  2. make no backup (--no-backup)',
  );
  if (plan.database) {
    const db = plan.database;
    lines.push(
      db.action === 'drop'
        ? `  3. drop the ${db.kind} database ${db.name} (${formatBytes(db.bytes)})`
        : `  3. keep the ${db.kind} database ${db.name}: ${db.reason}`,
    );
  } else lines.push('  3. no database (database.kind none)');
  for (const role of plan.roles)
    lines.push(role.action === 'drop' ? `     drop role ${role.name}` : `     keep role ${role.name}: ${role.reason}`);
  const repo = plan.repository;
  const archives =
    repo.archives !== undefined
      ? `${repo.archives} archive(s)${plan.backup ? ' before the last backup' : ''}`
      : repo.exists
        ? `archives unknown: ${repo.archivesError}`
        : 'does not exist yet';
  lines.push(
    repo.action === 'purge'
      ? `  4. DELETE the Borg repository ${repo.path} (${archives}) with every backup in it (--purge-backups)`
      : `  4. keep the Borg repository ${repo.path} (${archives}), and a copy of the folder without its volumes in ${plan.record}/folder (its config, secrets and passphrase: what a restore needs)`,
  );
  lines.push(`  5. remove the folder ${plan.folder.path} (${formatBytes(plan.folder.bytes)})`);
  for (const path of plan.state) lines.push(`     and ${path}`);
  lines.push(`  record: ${plan.record}/removal.json`);
  return lines.join('\n');
}

function renderRemoveReport(report: RemoveReport): string {
  const lines = [`Removed ${report.app} from ${report.plan.host} in ${(report.durationMs / 1000).toFixed(1)} s:`];
  lines.push(
    `  ${report.stopped}${report.backup ? `; last backup: ${report.backup.archive}` : '; no backup (--no-backup)'}`,
  );
  if (report.plan.database)
    lines.push(
      `  database ${report.plan.database.name}: ${report.databaseDropped ? 'dropped' : `kept (${report.plan.database.reason})`}`,
    );
  for (const role of report.plan.roles)
    lines.push(`  role ${role.name}: ${report.rolesDropped.includes(role.name) ? 'dropped' : `kept (${role.reason})`}`);
  lines.push(`  Borg repository ${report.plan.repository.path}: ${report.repository}`);
  for (const path of report.removed) lines.push(`  removed ${path}`);
  if (report.repository === 'kept') {
    lines.push(
      `To bring it back: cp -a ${report.record}/folder <apps root>/${report.app}, deploy install ${report.app}, deploy restore ${report.app}${report.backup ? ` --archive ${report.backup.archive}` : ''}`,
    );
  }
  lines.push(`Record: ${report.record}/removal.json`);
  return lines.join('\n');
}

/** `deploy remove <app>`: take an app off this host (backup first, then stop, database, roles, folder, state). */
export const removeCommand: DeployCommand = {
  command: 'remove <app>',
  recordsRun: (args) => args.yes === true,
  describe:
    'Remove an app from this host: stop it, make a last backup, drop its database and roles, remove its folder and state. Keeps its Borg repository unless --purge-backups. Needs --yes',
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('yes', {
        type: 'boolean',
        default: false,
        describe: 'Really remove (without it: print what would be removed and change nothing)',
      })
      .option('plan', {
        type: 'boolean',
        default: false,
        describe:
          'Print what would be removed (folder, size, database, roles, repository, archives) and change nothing',
      })
      .option('backup', {
        type: 'boolean',
        default: true,
        describe: 'Make a last Borg archive after stopping; --no-backup skips it',
      })
      .option('keep-backups', {
        type: 'boolean',
        describe: 'Keep the Borg repository and a copy of the folder without its volumes (the default)',
      })
      .option('purge-backups', {
        type: 'boolean',
        default: false,
        describe: 'Also delete the Borg repository with every archive (refused when another app shares it)',
      }),
  examples: [
    ['deploy remove notes --plan', 'What would go: folder and size, database, roles, repository and its archives'],
    [
      'deploy remove notes --yes',
      'Stop, last backup, drop database and roles, remove folder and state; the repository stays',
    ],
    [
      'deploy remove notes --yes --no-backup --purge-backups --json',
      'Everything, backups included, no last archive; result as JSON',
    ],
  ],
  async run(context, args) {
    const name = String(args.app);
    if (args.purgeBackups === true && args.keepBackups === true)
      throw new UsageError('REMOVE_BACKUPS_BOTH', '--keep-backups and --purge-backups contradict each other', {
        hint: 'Pick one; keeping is the default.',
      });
    const found = await discoverApps(context.hostContext.appsRoot, { allowMissingSecrets: true });
    let app: ReturnType<typeof pickApp>;
    try {
      app = pickApp(found, name);
    } catch (error) {
      const last =
        (error as DeployError).code === 'APP_UNKNOWN'
          ? await readLastRemoval(context.hostContext.stateDir, name)
          : undefined;
      if (last === undefined) throw error;
      throw new ConfigError(
        'APP_NOT_HERE',
        `${name} is not on ${context.hostContext.hostName}: removed by run ${last.runId} at ${last.time}`,
        {
          hint:
            last.repositoryAction === 'keep'
              ? `Its backups are in ${last.repository}; its folder without volumes in ${last.record}/folder.`
              : `Its backups were deleted with it; the record is ${last.record}/removal.json.`,
          details: { removedBy: last.runId, record: last.record },
        },
      );
    }
    const options = {
      app,
      host: context.host,
      hostContext: context.hostContext,
      bus: context.bus,
      runId: context.runId,
      backup: args.backup !== false,
      purgeBackups: args.purgeBackups === true,
    };
    if (args.plan === true || context.options.dryRun || args.yes !== true) {
      const plan = await planRemove(options);
      const text = renderRemovePlan(plan);
      if (args.plan === true || context.options.dryRun)
        return {
          exitCode: EXIT_CODES.ok,
          json: { ok: true, removed: false, plan },
          text: `${text}\nNothing was changed (plan).`,
        };
      const error = {
        kind: 'usage',
        code: 'REMOVE_NOT_CONFIRMED',
        message: `nothing was removed: deploy remove deletes ${name}'s folder${plan.database?.action === 'drop' ? ' and database' : ''}, so it needs --yes`,
        hint: `Read the list above, then: deploy remove ${name} --yes`,
      };
      process.stderr.write(`deploy: ${error.message}\n  next: ${error.hint}\n`);
      return { exitCode: EXIT_CODES.usage, json: { ok: false, removed: false, error, plan }, text };
    }
    const report = await removeApp(options);
    return { exitCode: EXIT_CODES.ok, json: report, text: renderRemoveReport(report) };
  },
};
