import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, DeployError, EXIT_CODES, formatBytes, formatDuration, UsageError, type TransportName } from '@deploykit/core';
import { listTransportNames, resolveTransport } from '@deploykit/transport';
import { loadApp } from '../../actions/load-app.js';
import { newArchiveName } from '../../phase-env.js';
import { DEFAULT_KEEP_MIGRATION_ARCHIVES } from '../../migrate/archive-retention.js';
import { findBaseMigration } from '../../migrate/cutover.js';
import { readDeployVersion } from '../../migrate/host-facts.js';
import { Journal, journalPath } from '../../migrate/journal.js';
import { readMovedMarker } from '../../migrate/moved-marker.js';
import { runSourcePreflight } from '../../migrate/source-preflight.js';
import { planMigration, runSourceMigration, type MigrateReport, type SourceRunOptions } from '../../migrate/source-run.js';
import { listVolumeEntries, type VolumeEntry } from '../../migrate/volume-delta.js';
import { renderTargetAftermath, renderVerification } from '../../receive/render-target-report.js';
import type { CommandContext } from '../command-context.js';
import type { DeployCommand, CommandOutcome } from '../deploy-command.js';
import { renderTable } from '../table.js';
import { checkSessionArgs, checkTargetDeploy, localDeployCommand, renderPlan, resolveTarget } from './migrate.js';

/** What `deploy cutover` (and `deploy migrate --cutover`) needs from its arguments. */
export interface CutoverArgs {
  readonly app: string;
  readonly to: string;
  readonly transport?: string;
  readonly force: boolean;
  readonly plan: boolean;
  readonly stallSeconds?: number;
}

/** Renders a cutover's report: parts, verification, the write-stop window, and what is left to do. */
export function renderCutoverReport(report: MigrateReport): string {
  const lines: string[] = [];
  const cutover = report.cutover;
  if (report.parts.length > 0) {
    lines.push(renderTable(['PART', 'BYTES', 'ON THE WIRE', 'TIME', 'PATH'], report.parts.map((part) => [part.id, formatBytes(part.bytes), formatBytes(part.wireBytes ?? part.bytes), formatDuration(part.elapsedMs), part.path])));
  }
  const target = report.targetReport;
  if (target && target.verification.checks.length > 0) lines.push('', renderVerification(target));
  const window = cutover?.writeStopMs !== undefined ? formatDuration(cutover.writeStopMs) : undefined;
  const volumes = Object.entries(cutover?.volumes ?? {}).map(([name, counts]) => `${name}: ${counts.added} added, ${counts.changed} changed, ${counts.removed} removed, ${counts.metadata} metadata-only`);
  if (report.ok && cutover) {
    lines.push(
      '',
      `Cut over ${report.app} to ${report.target} in ${formatDuration(report.durationMs)}. Writes stopped here for ${window ?? '?'} (${cutover.stoppedWith === 'maintenance' ? 'bin/maintenance on' : 'bin/stop'} -> healthy on ${report.target}).`,
      `Sent ${formatBytes(cutover.deltaBytes)} of volume delta (${volumes.join('; ') || 'no volumes'}) and ${formatBytes(cutover.databaseBytes)} of database.`,
      `  [x] health checks pass on ${report.target}${target?.baseUrl ? ` (${target.baseUrl})` : ''}`,
      `  [x] files: every volume file on ${report.target} matches the final archive ${report.archive} (count, bytes, SHA-256)`,
      '  [x] database: every table has the row count of the source after writes stopped',
      `  [x] ${report.app} here is marked as moved to ${report.target}: deploy start refuses it without --force${cutover.stoppedWith === 'maintenance' ? ' (it still answers with its maintenance page)' : ''}`,
      `  [ ] point DNS at ${report.target} and watch its logs`,
      `  [ ] then stop the copy here (deploy stop ${report.app}) and, when sure, deploy remove ${report.app} --yes`,
    );
  } else if (report.failure) {
    lines.push('', `Cutover FAILED at step [${report.failure.step}]${report.failure.stage ? ` (${report.failure.stage})` : ''}: ${report.failure.message}`, ...(report.failure.hint ? [`  next: ${report.failure.hint}`] : []));
    if (target) lines.push(...renderTargetAftermath(target));
    if (cutover?.sourceResumed === true) lines.push(`  ${report.app} serves here again${window ? ` (writes were stopped for ${window})` : ''}`);
    else if (cutover?.sourceResumed === false) lines.push(`  ${report.app} does NOT serve here: ${cutover.stoppedWith === 'maintenance' ? `deploy maintenance ${report.app} off` : `deploy start ${report.app}`}`);
    else lines.push(`  writes never stopped here; ${report.app} was not touched`);
  }
  lines.push(`Run record: ${report.journal}${target?.journal ? `; on ${report.target}: ${target.journal}` : ''}`);
  return lines.join('\n');
}

/** The exit code of a migration or cutover report. */
export function reportExitCode(report: MigrateReport): number {
  const kind = report.failure?.kind as keyof typeof EXIT_CODES | undefined;
  return report.ok ? EXIT_CODES.ok : report.failure?.code === 'INTERRUPTED' ? 130 : kind !== undefined && kind in EXIT_CODES ? EXIT_CODES[kind] : EXIT_CODES.transport;
}

/**
 * A cutover from this host: refuses without a finished migration to that host, lists the base
 * archive (before writes stop), then runs the migration machinery in cutover mode.
 */
export async function runCutover(context: CommandContext, args: CutoverArgs, runId: string = context.runId): Promise<CommandOutcome> {
  const app = await loadApp(context.hostContext.appsRoot, args.app);
  const transport = resolveTransport(typeof args.transport === 'string' ? args.transport : (app.manifest.migrate.transport as TransportName));
  if (!transport.interactive) {
    throw new UsageError('CUTOVER_TRANSPORT', `a cutover needs a session with the target (ssh or local); ${transport.name} is not supported for it yet`, { hint: `Add --transport ssh (the delta and database are small; the migration itself may use ${transport.name}).` });
  }
  const to = checkSessionArgs({ to: args.to }, context.hostContext.hostName);
  const moved = await readMovedMarker(context.hostContext.stateDir, app.name);
  if (moved !== undefined) {
    throw new ConfigError('CUTOVER_ALREADY_MOVED', `${app.name} on this host was cut over to ${moved.to} already (${moved.at}, run ${moved.runId})`, { hint: `It lives on ${moved.to} now. To move it on from there, run deploy cutover on ${moved.to}.` });
  }
  const base = await findBaseMigration(context.hostContext.stateDir, app.name, to);
  if (base === undefined) {
    throw new ConfigError('CUTOVER_NO_MIGRATION', `no finished migration of ${app.name} from this host to ${to} on record`, { hint: `Migrate it first while it serves here: deploy migrate ${app.name} --to ${to}; then deploy cutover ${app.name} --to ${to}.` });
  }
  const stopWrites = await access(join(app.dir, 'bin', 'maintenance'), constants.X_OK).then(
    () => 'maintenance' as const,
    () => 'stop' as const,
  );
  const target = await resolveTarget(to, transport, context.configPath ?? context.options.config, runId);
  try {
    // A target without deploy, or of another major.minor, is refused before writes stop (decision 0009).
    if (transport.name !== 'local') await checkTargetDeploy(target.deploy, to);
    const preflight = await runSourcePreflight({ app, source: context.hostContext, host: context.host, withHistory: false });
    // The base never changes: listed (with SHA-256) now, while the app still serves, not in the write-stop window.
    const baseListings: Record<string, VolumeEntry[]> = {};
    for (const volume of app.manifest.volumes) {
      try {
        baseListings[volume.name] = await listVolumeEntries(context.host, preflight.borgEnv, base.archive, volume.path.replace(/\/$/, ''), { sha256: true });
      } catch (error) {
        if (error instanceof DeployError && error.code === 'BORG_LOCKED') throw error;
        throw new ConfigError('CUTOVER_BASE_GONE', `the archive ${base.archive} of the migration to ${to} (run ${base.runId}) cannot be listed: ${(error as Error).message}`, {
          hint: `Without it the delta is unknown: migrate again (deploy migrate ${app.name} --to ${to} --replace), then cut over.`,
        });
      }
    }
    const options: SourceRunOptions = {
      app,
      manifestText: await readFile(app.manifestPath, 'utf8'),
      source: context.hostContext,
      localHost: context.host,
      targetHost: target.host,
      targetDeploy: target.deploy,
      targetName: to,
      transport,
      transportOptions: {},
      runId,
      newArchive: newArchiveName(app),
      withHistory: false,
      replace: false,
      resume: false,
      stallSeconds: args.stallSeconds ?? context.config.defaults.stall_seconds,
      // A failed cutover rolls back and serves here again; it is not resumed.
      retries: 0,
      keepArchives: app.manifest.migrate.keep_archives ?? context.config.defaults.keep_migration_archives ?? DEFAULT_KEEP_MIGRATION_ARCHIVES,
      preflight,
      deployVersion: await readDeployVersion(),
      deployCommand: localDeployCommand(),
      ...(context.configPath ? { configPath: context.configPath } : {}),
      bus: context.bus,
      journal: new Journal(journalPath(context.hostContext.stateDir, app.name, runId)),
      signal: context.signal,
      cutover: { base, baseListings, stopWrites, force: args.force },
    };
    if (args.plan) {
      const planned = await planMigration(options);
      const text = renderPlan(planned.plan, planned.target, [`cutover on top of archive ${base.archive} (migration run ${base.runId}, finished ${base.finishedAt}); writes stop with ${stopWrites === 'maintenance' ? 'bin/maintenance on' : 'bin/stop'}`, ...preflight.notes]).replace(/^Plan: migrate /, 'Plan: cut over ');
      return { exitCode: planned.target?.ok === false ? EXIT_CODES.conflict : EXIT_CODES.ok, json: { plan: planned.plan, target: planned.target, base, stopWrites, notes: preflight.notes }, text };
    }
    context.bus.emit('cutover.start', { app: app.name, message: `cutting ${app.name} over to ${to} over ${transport.name}: the delta since ${base.archive} and the database; run ${runId}` });
    await options.journal.write({ step: 'run', status: 'ok', detail: { deployVersion: options.deployVersion, app: app.name, target: to, transport: transport.name, archive: options.newArchive, cutover: true, baseArchive: base.archive, baseRunId: base.runId } });
    const { report } = await runSourceMigration(options);
    return { exitCode: reportExitCode(report), json: report, text: renderCutoverReport(report) };
  } finally {
    await target.host.close();
    await target.cleanup();
  }
}

/** `deploy cutover <app> --to <host>`: the second phase of a move, with writes stopped only for the delta. */
export const cutoverCommand: DeployCommand = {
  command: 'cutover <app>',
  describe: 'Finish a move: stop writes here, send only what changed since the migration (and the database), start and check the app there; serve here again if it fails',
  interruptible: true,
  // Its run record (deploy runs) and the live view on a terminal, like a migration's (the same events).
  recordsRun: (args) => args.plan !== true,
  liveView: (args) => args.plan !== true,
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('to', { type: 'string', describe: 'The host a finished `deploy migrate` moved the app to', demandOption: true })
      .option('transport', { type: 'string', choices: listTransportNames(), describe: "How the bytes travel: ssh or local [default: the app's migrate.transport]" })
      .option('force', { type: 'boolean', default: false, describe: 'Go on when the copy there changed since the migration (the final verification still decides)' })
      .option('plan', { type: 'boolean', default: false, describe: 'Print the exact steps and commands on both hosts, change nothing' })
      .option('stall-seconds', { type: 'number', describe: 'Abort a transfer when no byte moved for this long [default 60]' }),
  examples: [
    ['deploy migrate notes --to b', 'Phase 1, while notes serves here: copy it to b, start and verify it there'],
    ['deploy cutover notes --to b --plan', 'Show every step of phase 2 on both hosts'],
    ['deploy cutover notes --to b', 'Phase 2: maintenance page here, the delta and database to b, healthy there; then point DNS at b'],
    ['deploy cutover notes --to b --json', 'The same; the report (write-stop window, delta bytes) as JSON'],
  ],
  async run(context, args) {
    return runCutover(context, { app: String(args.app), to: String(args.to), ...(typeof args.transport === 'string' ? { transport: args.transport } : {}), force: args.force === true, plan: args.plan === true, ...(typeof args.stallSeconds === 'number' ? { stallSeconds: args.stallSeconds } : {}) });
  },
};

