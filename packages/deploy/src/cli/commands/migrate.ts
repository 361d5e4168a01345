import { fileURLToPath } from 'node:url';
import { EXIT_CODES, formatBytes, formatDuration, ConfigError, displayArgv, type TransportName } from '@deploykit/core';
import { expandPlaceholders } from '@deploykit/manifest';
import { loadApp } from '../../actions/load-app.js';
import { resolveBaseUrl } from '../../health/run-checks.js';
import { newArchiveName } from '../../phase-env.js';
import { runPhase } from '../../script-runner.js';
import { executeMigration, type MigrateReport } from '../../migrate/execute.js';
import { Journal, journalPath } from '../../migrate/journal.js';
import { buildMigratePlan, type MigratePlan, type PlanInput } from '../../migrate/plan.js';
import { runPreflight, type PreflightResult } from '../../migrate/preflight.js';
import { resolveNamedHost } from '../delegate.js';
import type { DeployCommand } from '../deploy-command.js';
import { renderTable } from '../table.js';

const TRANSPORTS: readonly TransportName[] = ['ssh', 'ffl', 'scp', 'local'];

/** The argv that runs this very `deploy` (node + bin script), for child runs on the source. */
export function localDeployCommand(): string[] {
  return [process.execPath, fileURLToPath(new URL('../../../bin/deploy.js', import.meta.url))];
}

/** Renders a plan for humans: numbered steps, each with the exact command it runs (secrets masked). */
export function renderPlan(plan: MigratePlan, preflight?: PreflightResult): string {
  const lines = [`Plan: migrate ${plan.app} to ${plan.target} over ${plan.transport} (run ${plan.runId}, archive ${plan.archive})`];
  if (preflight) {
    lines.push(`  target ${preflight.target.hostName}: ${formatBytes(preflight.target.freeBytes)} free, needs ${formatBytes(preflight.neededBytes)}; source needs no staging space (streaming)`);
    for (const note of preflight.notes) lines.push(`  note: ${note}`);
  }
  plan.steps.forEach((step, index) => {
    lines.push(`${String(index + 1).padStart(2)}. [${step.id}] ${step.title}`);
    lines.push(`      $ ${displayArgv(step.argv)}`);
  });
  return lines.join('\n');
}

/** Renders the final report: streams, verification, and the cutover checklist. */
export function renderReport(report: MigrateReport, baseUrl: string | undefined): string {
  const lines: string[] = [];
  if (report.streams.length > 0) {
    lines.push(
      renderTable(
        ['STREAM', 'BYTES', 'TIME', 'RATE', 'PATH', 'RETRIES'],
        report.streams.map((s) => [s.name, formatBytes(s.bytes), formatDuration(s.elapsedMs), `${formatBytes(Math.round(s.rate))}/s`, s.path, String(s.retries)]),
      ),
    );
  }
  if (report.verification) {
    lines.push('', renderTable(['VERIFY', 'RESULT', 'DETAIL'], report.verification.checks.map((c) => [c.name, c.ok ? 'ok' : 'FAILED', c.detail])));
  }
  if (report.ok) {
    lines.push(
      '',
      `Migrated ${report.app} to ${report.target} in ${formatDuration(report.durationMs)}. Cutover checklist:`,
      `  [x] health checks pass on ${report.target}${baseUrl ? ` (${baseUrl})` : ''}`,
      '  [x] files: every volume file matches the archive (count, bytes, SHA-256)',
      '  [x] database: every table has the source row count; DB-backed pages answer',
      '  [x] login flow and log scan pass (see the health rows above)',
      `  [ ] stop writes on the source: deploy stop ${report.app} (on the source host)`,
      `  [ ] point DNS at ${report.target}, watch its logs, then retire the source copy`,
      `Run record: ${report.journal}`,
    );
  } else if (report.failure) {
    lines.push(
      '',
      `Migration FAILED at step [${report.failure.step}]: ${report.failure.message}`,
      ...(report.failure.hint ? [`  next: ${report.failure.hint}`] : []),
      `  target rolled back: ${report.rolledBack && report.rolledBack.length > 0 ? report.rolledBack.join(', ') : 'nothing to undo'}; the source was not changed`,
      `  run record: ${report.journal}`,
    );
  }
  return lines.join('\n');
}

/** `deploy migrate <app> --to <host>`: move a running app to another host by streaming, then verify it. */
export const migrateCommand: DeployCommand = {
  command: 'migrate <app>',
  describe: 'Move an app to another host by streaming its backup, database and config; install, start and verify it there',
  interruptible: true,
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('to', { type: 'string', describe: 'Target host (named in the global config)', demandOption: true })
      .option('transport', { type: 'string', choices: TRANSPORTS as unknown as string[], describe: "How the bytes travel [default: the app's migrate.transport]" })
      .option('with-history', { type: 'boolean', describe: "Also carry the app's Borg repository with every archive [default: the app's migrate.with_history]" })
      .option('plan', { type: 'boolean', default: false, describe: 'Print the exact steps and commands, change nothing' })
      .option('replace', { type: 'boolean', default: false, describe: 'Allow replacing an existing app folder on the target' })
      .option('stall-seconds', { type: 'number', describe: 'Abort a stream when no byte moved for this long [default 60]' })
      .option('retries', { type: 'number', describe: 'Re-run a failed stream this many times [default 2]' }),
  examples: [
    ['deploy migrate notes --to b --plan', 'Show every step and command first'],
    ['deploy migrate notes --to b', 'Move notes to host b over ssh, verify it there'],
    ['deploy migrate notes --to b --transport ffl --with-history --json', 'Over FastFileLink, with the Borg history, report as JSON'],
  ],
  async run(context, args) {
    const app = await loadApp(context.hostContext.appsRoot, String(args.app));
    const to = String(args.to);
    if (to === context.hostContext.hostName) {
      throw new ConfigError('MIGRATE_SAME_HOST', `${to} is this host`, { hint: 'Name another host as --to.' });
    }
    const transport = (typeof args.transport === 'string' ? args.transport : app.manifest.migrate.transport) as TransportName;
    const withHistory = typeof args.withHistory === 'boolean' ? args.withHistory : app.manifest.migrate.with_history;
    const targetHost = await resolveNamedHost(to, context.options.config);
    try {
      const remoteDeploy = ['deploy'];
      const preflight = await runPreflight({ app, source: context.hostContext, localHost: context.host, targetHost, remoteDeploy, transport, withHistory, replace: args.replace === true });
      const targetBorgRepo = expandPlaceholders(app.manifest.borg?.repository ?? '{state_dir}/borg/{app}', { app: app.name, state_dir: preflight.target.stateDir, app_dir: preflight.target.app.dir });
      const input: PlanInput = {
        app,
        source: context.hostContext,
        target: { name: to, facts: preflight.target },
        runId: context.runId,
        archive: newArchiveName(app),
        transport,
        withHistory,
        replace: args.replace === true,
        borgEnv: preflight.borgEnv,
        archiveHasDump: preflight.archiveHasDump,
        fidelity: preflight.fidelity,
        stallSeconds: typeof args.stallSeconds === 'number' ? args.stallSeconds : context.config.defaults.stall_seconds,
        retries: typeof args.retries === 'number' ? args.retries : context.config.defaults.retries,
        deployCommand: localDeployCommand(),
        remoteDeployCommand: remoteDeploy,
        ...(context.configPath ? { configPath: context.configPath } : {}),
        estimatedBytes: preflight.volumeBytes,
        dropLeftoverDatabase: preflight.targetDatabaseExists,
        targetBorgRepo,
      };
      const plan = buildMigratePlan(input);
      if (args.plan === true) {
        return { exitCode: EXIT_CODES.ok, json: { plan, preflight: { ...preflight, fidelity: undefined, borgEnv: undefined } }, text: renderPlan(plan, preflight) };
      }
      const journal = new Journal(journalPath(context.hostContext.stateDir, app.name, context.runId));
      await journal.write({ step: 'plan', status: 'ok', detail: { steps: plan.steps.map((step) => ({ id: step.id, argv: displayArgv(step.argv) })) } });
      // The full plan goes to the run log (debug); the terminal gets one line (`--plan` shows it all).
      context.bus.emit('migrate.plan', { app: app.name, level: 'debug', message: renderPlan(plan, preflight) });
      context.bus.emit('migrate.start', {
        app: app.name,
        message: `migrating ${app.name} to ${to} over ${transport}: ${plan.steps.length} steps, target has ${formatBytes(preflight.target.freeBytes)} free for ${formatBytes(preflight.neededBytes)}; run ${context.runId}`,
      });
      for (const note of preflight.notes) context.bus.emit('migrate.note', { app: app.name, message: `note: ${note}` });

      // The app's own bin/migrate may replace the default steps (exit 0) or let them run (exit 75).
      const hook = await runPhase({
        app,
        phase: 'migrate',
        host: context.host,
        bus: context.bus,
        context: { runId: context.runId, role: 'source', host: context.hostContext, archive: input.archive },
        extraEnv: { DEPLOY_MIGRATE_TARGET: to, DEPLOY_MIGRATE_TRANSPORT: transport, DEPLOY_MIGRATE_RUN_RECORD: journal.path },
      });
      if (hook.status === 'failed') {
        await journal.write({ step: 'bin/migrate', status: 'failed', detail: { exitCode: hook.exitCode } });
        return { exitCode: EXIT_CODES.script, json: { ok: false, hook }, text: `${app.name}:migrate (the app's own bin/migrate) failed: ${hook.reason}\n${hook.stderrTail}` };
      }
      if (hook.status === 'ok') {
        await journal.write({ step: 'bin/migrate', status: 'ok', detail: { replacedDefaultSteps: true } });
        return { exitCode: EXIT_CODES.ok, json: { ok: true, replacedBy: 'bin/migrate' }, text: `${app.name}: bin/migrate did the migration itself (exit 0); default steps skipped` };
      }
      const report = await executeMigration({ plan, input, app, source: context.hostContext, localHost: context.host, targetHost, bus: context.bus, journal, signal: context.signal });
      let baseUrl: string | undefined;
      try {
        baseUrl = resolveBaseUrl({ app, host: context.host, hostContext: { ...context.hostContext, hostAddress: preflight.target.hostAddress } });
      } catch {
        baseUrl = undefined;
      }
      const exitCode = report.ok ? EXIT_CODES.ok : report.failure?.code === 'INTERRUPTED' ? 130 : report.failure?.kind === 'conflict' ? EXIT_CODES.conflict : report.failure?.kind === 'script' ? EXIT_CODES.script : EXIT_CODES.transport;
      return { exitCode, json: report, text: renderReport(report, baseUrl) };
    } finally {
      await targetHost.close();
    }
  },
};
