import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ConfigError,
  DeployError,
  EXIT_CODES,
  formatBytes,
  formatDuration,
  UsageError,
  type TransportName,
} from '@deploykit/core';
import { acquireAppLock } from '../../migrate/app-lock.js';
import { listTransportNames, resolveTransport } from '@deploykit/transport';
import { loadApp } from '../../actions/load-app.js';
import { newArchiveName } from '../../phase-env.js';
import { findBaseMigration } from '../../migrate/cutover.js';
import { Journal, journalPath } from '../../migrate/journal.js';
import { readMovedMarker, writeMovedMarker } from '../../migrate/moved-marker.js';
import {
  clearPendingCutover,
  confirmCodeMatches,
  newConfirmCode,
  readPendingCutover,
  resumeWritesCommand,
} from '../../migrate/paired-cutover.js';
import { runSourcePreflight } from '../../migrate/source-preflight.js';
import { planMigration, runSourceMigration, type MigrateReport } from '../../migrate/source-run.js';
import { listVolumeEntries, type VolumeEntry } from '../../migrate/volume-delta.js';
import { renderTargetAftermath, renderVerification } from '../../receive/render-target-report.js';
import type { CommandContext } from '../command-context.js';
import type { DeployCommand, CommandOutcome } from '../deploy-command.js';
import { renderTable } from '../table.js';
import {
  checkSessionArgs,
  checkTargetDeploy,
  buildSourceRunOptions,
  preparePairing,
  renderPlan,
  resolveTarget,
  writeRunLine,
} from './migrate.js';

/** What `deploy cutover` (and `deploy migrate --cutover`) needs from its arguments. */
export interface CutoverArgs {
  readonly app: string;
  readonly to: string;
  readonly transport?: string;
  readonly force: boolean;
  readonly plan: boolean;
  readonly stallSeconds?: number;
  /** Pairing mode: share the cutover bundle with ffl for the new host's operator (decision 0011). */
  readonly pair?: boolean;
  /** With pair: how long the link waits for the new host (writes stop only when it pulls). */
  readonly wait?: number;
  readonly codeFile?: string;
}

/** The name a pairing gives the new host when --to does not name it (the same as deploy migrate --pair's). */
const PAIRED_TARGET_NAME = 'the new host';

/** Renders a cutover's report: parts, verification, the write-stop window, and what is left to do. */
export function renderCutoverReport(report: MigrateReport): string {
  const lines: string[] = [];
  const cutover = report.cutover;
  if (report.parts.length > 0) {
    lines.push(
      renderTable(
        ['PART', 'BYTES', 'ON THE WIRE', 'TIME', 'PATH'],
        report.parts.map((part) => [
          part.id,
          formatBytes(part.bytes),
          formatBytes(part.wireBytes ?? part.bytes),
          formatDuration(part.elapsedMs),
          part.path,
        ]),
      ),
    );
  }
  const target = report.targetReport;
  if (target && target.verification.checks.length > 0) lines.push('', renderVerification(target));
  const window = cutover?.writeStopMs !== undefined ? formatDuration(cutover.writeStopMs) : undefined;
  const volumes = Object.entries(cutover?.volumes ?? {}).map(
    ([name, counts]) =>
      `${name}: ${counts.added} added, ${counts.changed} changed, ${counts.removed} removed, ${counts.metadata} metadata-only`,
  );
  if (cutover?.awaitingVerdict) {
    const pairing = report.pairing;
    if (report.ok) {
      lines.push(
        '',
        `Delivered the cutover of ${report.app} to ${report.target} in ${formatDuration(report.durationMs)}${pairing?.pullMs !== undefined ? ` (pulled in ${formatDuration(pairing.pullMs)}${pairing.path ? `, path ${pairing.path}` : ''})` : ''}.`,
        `Sent ${formatBytes(cutover.deltaBytes)} of volume delta (${volumes.join('; ') || 'no volumes'}) and ${formatBytes(cutover.databaseBytes)} of database.`,
      );
    } else if (report.failure) {
      lines.push('', `Cutover not confirmed at step [${report.failure.step}]: ${report.failure.message}`);
    }
    lines.push(
      `${report.app} stays stopped here (${cutover.stoppedWith === 'maintenance' ? 'maintenance page' : 'bin/stop'}): only the new host knows whether the cutover took. Its deploy receive ends with the one command to run here:`,
      `  [ ] it reports success and shows a code:  ${cutover.awaitingVerdict.confirm}   (marks ${report.app} here as moved)`,
      `  [ ] it reports a rollback:                 ${cutover.awaitingVerdict.resume}   (serves here again; nothing was lost)`,
      `  [ ] after the confirmation: point DNS at the new host, then deploy stop ${report.app} here`,
    );
  } else if (report.ok && cutover) {
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
    lines.push(
      '',
      `Cutover FAILED at step [${report.failure.step}]${report.failure.stage ? ` (${report.failure.stage})` : ''}: ${report.failure.message}`,
      ...(report.failure.hint ? [`  next: ${report.failure.hint}`] : []),
    );
    if (target) lines.push(...renderTargetAftermath(target));
    if (cutover?.sourceResumed === true)
      lines.push(`  ${report.app} serves here again${window ? ` (writes were stopped for ${window})` : ''}`);
    else if (cutover?.sourceResumed === false)
      lines.push(
        `  ${report.app} does NOT serve here: ${cutover.stoppedWith === 'maintenance' ? `deploy maintenance ${report.app} off` : `deploy start ${report.app}`}`,
      );
    else lines.push(`  writes never stopped here; ${report.app} was not touched`);
  }
  lines.push(`Run record: ${report.journal}${target?.journal ? `; on ${report.target}: ${target.journal}` : ''}`);
  return lines.join('\n');
}

/** The exit code of a migration or cutover report. */
export function reportExitCode(report: MigrateReport): number {
  const kind = report.failure?.kind as keyof typeof EXIT_CODES | undefined;
  return report.ok
    ? EXIT_CODES.ok
    : report.failure?.code === 'INTERRUPTED'
      ? 130
      : kind !== undefined && kind in EXIT_CODES
        ? EXIT_CODES[kind]
        : EXIT_CODES.transport;
}

/**
 * A cutover from this host: refuses without a finished migration to that host, lists the base
 * archive (before writes stop), then runs the migration machinery in cutover mode.
 */
export async function runCutover(
  context: CommandContext,
  args: CutoverArgs,
  runId: string = context.runId,
): Promise<CommandOutcome> {
  const app = await loadApp(context.hostContext.appsRoot, args.app);
  const pair = args.pair === true;
  if (pair && typeof args.transport === 'string' && args.transport !== 'ffl')
    throw new UsageError(
      'CUTOVER_PAIR_TRANSPORT',
      `--pair shares the cutover with ffl; --transport ${args.transport} needs a session with the target`,
      { hint: 'Drop --transport, or drop --pair and name the target with --to.' },
    );
  if (pair && args.force)
    throw new UsageError('CUTOVER_PAIR_FORCE', "with --pair, applying over a changed copy is the new host's choice", {
      hint: `Drop --force; run deploy receive ${app.name} --from <link> --force there instead.`,
    });
  const transport = resolveTransport(
    pair
      ? 'ffl'
      : typeof args.transport === 'string'
        ? args.transport
        : (app.manifest.migrate.transport as TransportName),
  );
  if (!transport.interactive && !pair) {
    throw new UsageError(
      'CUTOVER_TRANSPORT',
      `a cutover needs a session with the target (ssh or local); ${transport.name} is not supported for it yet`,
      {
        hint: `Add --transport ssh (the delta and database are small; the migration itself may use ${transport.name}).`,
      },
    );
  }
  const to = pair
    ? args.to !== ''
      ? args.to
      : PAIRED_TARGET_NAME
    : checkSessionArgs({ to: args.to }, context.hostContext.hostName);
  const pending = await readPendingCutover(context.hostContext.stateDir, app.name);
  if (pending !== undefined) {
    throw new ConfigError(
      'CUTOVER_PENDING',
      `a cutover of ${app.name} to ${pending.to} (run ${pending.runId}) waits for its verdict: ${app.name} is stopped here since ${pending.stoppedAt}`,
      {
        hint: `Ask the new host's operator what its deploy receive reported: on success run deploy cutover ${app.name} --confirm <code it shows>; on a rollback ${resumeWritesCommand(app.name, pending.stoppedWith)}.`,
      },
    );
  }
  const moved = await readMovedMarker(context.hostContext.stateDir, app.name);
  if (moved !== undefined) {
    throw new ConfigError(
      'CUTOVER_ALREADY_MOVED',
      `${app.name} on this host was cut over to ${moved.to} already (${moved.at}, run ${moved.runId})`,
      { hint: `It lives on ${moved.to} now. To move it on from there, run deploy cutover on ${moved.to}.` },
    );
  }
  const base = await findBaseMigration(context.hostContext.stateDir, app.name, to);
  const pairing = pair
    ? await preparePairing({ wait: args.wait, codeFile: args.codeFile, plan: args.plan }, context.host)
    : undefined;
  if (base === undefined) {
    throw new ConfigError(
      'CUTOVER_NO_MIGRATION',
      `no finished migration of ${app.name} from this host to ${to} on record`,
      {
        hint: pair
          ? `Pair it first while it serves here: deploy migrate ${app.name} --pair${to === PAIRED_TARGET_NAME ? '' : ` --to ${to}`}; once the new host reports it healthy, deploy cutover ${app.name} --pair${to === PAIRED_TARGET_NAME ? '' : ` --to ${to}`}.`
          : `Migrate it first while it serves here: deploy migrate ${app.name} --to ${to}; then deploy cutover ${app.name} --to ${to}.`,
      },
    );
  }
  const stopWrites = await access(join(app.dir, 'bin', 'maintenance'), constants.X_OK).then(
    () => 'maintenance' as const,
    () => 'stop' as const,
  );
  // Pairing: no session with the new host; its own deploy receive checks its copy and reports there.
  const target = pair
    ? undefined
    : await resolveTarget(to, transport, context.configPath ?? context.options.config, runId);
  try {
    // A target without deploy, or of another major.minor, is refused before writes stop (decision 0009).
    if (target && transport.name !== 'local') await checkTargetDeploy(target.deploy, to);
    const preflight = await runSourcePreflight({
      app,
      source: context.hostContext,
      host: context.host,
      withHistory: false,
    });
    // The base never changes: listed (with SHA-256) now, while the app still serves, not in the write-stop window.
    const baseListings: Record<string, VolumeEntry[]> = {};
    for (const volume of app.manifest.volumes) {
      try {
        baseListings[volume.name] = await listVolumeEntries(
          context.host,
          preflight.borgEnv,
          base.archive,
          volume.path.replace(/\/$/, ''),
          { sha256: true },
        );
      } catch (error) {
        if (error instanceof DeployError && error.code === 'BORG_LOCKED') throw error;
        throw new ConfigError(
          'CUTOVER_BASE_GONE',
          `the archive ${base.archive} of the migration to ${to} (run ${base.runId}) cannot be listed: ${(error as Error).message}`,
          {
            hint: `Without it the delta is unknown: migrate again (deploy migrate ${app.name} --to ${to} --replace), then cut over.`,
          },
        );
      }
    }
    const options = await buildSourceRunOptions(context, {
      app,
      target,
      pairing,
      targetName: to,
      transport,
      runId,
      newArchive: newArchiveName(app),
      withHistory: false,
      replace: false,
      resume: false,
      stallSeconds: args.stallSeconds ?? context.config.defaults.stall_seconds,
      // A failed cutover rolls back and serves here again; it is not resumed.
      retries: 0,
      preflight,
      cutover: {
        base,
        baseListings,
        stopWrites,
        force: args.force,
        ...(pair ? { confirmCode: newConfirmCode() } : {}),
      },
    });
    if (args.plan) {
      const planned = await planMigration(options);
      const text = renderPlan(planned.plan, planned.target, [
        `cutover on top of archive ${base.archive} (migration run ${base.runId}, finished ${base.finishedAt}); writes stop with ${stopWrites === 'maintenance' ? 'bin/maintenance on' : 'bin/stop'}${pair ? ' once the new host starts pulling' : ''}`,
        ...preflight.notes,
      ]).replace(/^Plan: migrate /, 'Plan: cut over ');
      return {
        exitCode: planned.target?.ok === false ? EXIT_CODES.conflict : EXIT_CODES.ok,
        json: { plan: planned.plan, target: planned.target, base, stopWrites, notes: preflight.notes },
        text,
      };
    }
    context.bus.emit('cutover.start', {
      app: app.name,
      message: pair
        ? `cutting ${app.name} over to ${to} by pairing (ffl): the delta since ${base.archive} and the database; writes stop here only when the new host pulls; run ${runId}`
        : `cutting ${app.name} over to ${to} over ${transport.name}: the delta since ${base.archive} and the database; run ${runId}`,
    });
    await writeRunLine(options, {
      cutover: true,
      baseArchive: base.archive,
      baseRunId: base.runId,
      ...(pair ? { pairing: true } : {}),
    });
    const { report } = await runSourceMigration(options);
    return { exitCode: reportExitCode(report), json: report, text: renderCutoverReport(report) };
  } finally {
    await target?.host.close();
    await target?.cleanup();
  }
}

/**
 * `deploy cutover <app> --confirm <code>`: the verdict of a paired cutover, typed in from the new
 * host's screen (decision 0011). The code is the one that host shows only when the delta is applied
 * and the app healthy there; it marks the copy here as moved and finishes the cutover's run record.
 */
export async function confirmPairedCutover(
  context: CommandContext,
  appName: string,
  code: string,
): Promise<CommandOutcome> {
  const { stateDir } = context.hostContext;
  const pending = await readPendingCutover(stateDir, appName);
  if (pending === undefined) {
    const moved = await readMovedMarker(stateDir, appName);
    if (moved !== undefined)
      throw new ConfigError(
        'CUTOVER_ALREADY_MOVED',
        `${appName} on this host was cut over to ${moved.to} already (${moved.at}, run ${moved.runId})`,
        { hint: 'Nothing to confirm.' },
      );
    throw new ConfigError(
      'CUTOVER_NOTHING_PENDING',
      `no paired cutover of ${appName} waits for its verdict on this host`,
      {
        hint: `A cutover whose writes resumed here (deploy start, deploy maintenance off) cannot be confirmed: the new host lacks what was written since. Run a new one: deploy cutover ${appName} --pair.`,
      },
    );
  }
  if (!confirmCodeMatches(code, pending.confirmCode)) {
    throw new UsageError(
      'CUTOVER_CONFIRM_CODE',
      `${code} is not the code of the cutover of ${appName} to ${pending.to} (run ${pending.runId})`,
      {
        hint: `Type the code the new host's deploy receive showed at its end - it shows one only when the app is healthy there. If it rolled back instead: ${resumeWritesCommand(appName, pending.stoppedWith)}.`,
      },
    );
  }
  // The cutover's own run may still wait for ffl's delivery report: the lock says so.
  const lock = await acquireAppLock({
    stateDir,
    app: appName,
    runId: context.runId,
    command: `deploy cutover ${appName} --confirm`,
  });
  const confirmedAt = new Date();
  try {
    const journal = new Journal(journalPath(stateDir, appName, pending.runId));
    await journal.write({ step: 'confirmed', status: 'ok', detail: { by: context.runId } });
    await journal.write({
      step: 'finished',
      status: 'ok',
      detail: { target: pending.to, archive: pending.archive, cutover: true },
    });
    await writeMovedMarker(stateDir, appName, {
      to: pending.to,
      runId: pending.runId,
      at: confirmedAt.toISOString(),
      archive: pending.archive,
    });
    await clearPendingCutover(stateDir, appName);
  } finally {
    await lock.release();
  }
  const stoppedMs = Date.parse(pending.stoppedAt);
  const stoppedFor = Number.isFinite(stoppedMs) ? confirmedAt.getTime() - stoppedMs : undefined;
  context.bus.emit('cutover.moved', {
    app: appName,
    message: `${appName} here is marked as moved to ${pending.to}: deploy start refuses it without --force`,
  });
  return {
    exitCode: EXIT_CODES.ok,
    json: {
      app: appName,
      runId: pending.runId,
      movedTo: pending.to,
      archive: pending.archive,
      stoppedAt: pending.stoppedAt,
      confirmedAt: confirmedAt.toISOString(),
      ...(stoppedFor !== undefined ? { stoppedForMs: stoppedFor } : {}),
    },
    text: [
      `Confirmed the cutover of ${appName} to ${pending.to} (run ${pending.runId}, archive ${pending.archive}).`,
      `  [x] ${appName} here is marked as moved to ${pending.to}: deploy start and deploy maintenance off refuse it without --force`,
      `  [x] writes stopped here at ${pending.stoppedAt}${stoppedFor !== undefined ? ` (${formatDuration(stoppedFor)} ago)` : ''} and the new host has every one of them`,
      `  [ ] point DNS at ${pending.to} and watch its logs`,
      `  [ ] then stop the copy here (deploy stop ${appName}) and, when sure, deploy remove ${appName} --yes`,
    ].join('\n'),
  };
}

/** `deploy cutover <app> --to <host>`: the second phase of a move, with writes stopped only for the delta. */
export const cutoverCommand: DeployCommand = {
  command: 'cutover <app>',
  describe:
    'Finish a move: stop writes here, send only what changed since the migration (and the database), start and check the app there; serve here again if it fails',
  interruptible: true,
  // Its run record (deploy runs) and the live view on a terminal, like a migration's (the same events).
  recordsRun: (args) => args.plan !== true,
  // Pairing shows its link and code on this terminal (as deploy migrate --pair): no live view over them.
  liveView: (args) => args.plan !== true && args.pair !== true && args.confirm === undefined,
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('to', {
        type: 'string',
        describe: 'The host a finished `deploy migrate` moved the app to (with --pair only its name in messages)',
      })
      .option('pair', {
        type: 'boolean',
        default: false,
        describe:
          'Pairing mode, for a host this one cannot SSH into: share the cutover with ffl (a new link and code); writes stop when the new host pulls, and stay stopped until --confirm',
      })
      .option('wait', {
        type: 'number',
        describe:
          'With --pair: how long the link waits for the new host to start pulling, in seconds (writes go on meanwhile) [default 1800]',
      })
      .option('code-file', {
        type: 'string',
        describe:
          'With --pair: write the pickup code to this new file (mode 0600) instead of showing it on the terminal',
      })
      .option('confirm', {
        type: 'string',
        requiresArg: true,
        describe: 'After a paired cutover: the code the new host showed on success; marks the copy here as moved',
      })
      .option('transport', {
        type: 'string',
        choices: listTransportNames(),
        describe: "How the bytes travel: ssh or local [default: the app's migrate.transport]",
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'Go on when the copy there changed since the migration (the final verification still decides)',
      })
      .option('plan', {
        type: 'boolean',
        default: false,
        describe: 'Print the exact steps and commands on both hosts, change nothing',
      })
      .option('stall-seconds', {
        type: 'number',
        describe: 'Abort a transfer when no byte moved for this long [default 60]',
      }),
  examples: [
    ['deploy migrate notes --to b', 'Phase 1, while notes serves here: copy it to b, start and verify it there'],
    ['deploy cutover notes --to b --plan', 'Show every step of phase 2 on both hosts'],
    [
      'deploy cutover notes --to b',
      'Phase 2: maintenance page here, the delta and database to b, healthy there; then point DNS at b',
    ],
    ['deploy cutover notes --to b --json', 'The same; the report (write-stop window, delta bytes) as JSON'],
    [
      'deploy cutover notes --pair',
      'After deploy migrate notes --pair: prints deploy receive notes --from <link> to run on the new host, and the pickup code',
    ],
    [
      'deploy cutover notes --confirm K7QD-MX9P',
      'The new host reported the paired cutover healthy and showed this code: mark notes here as moved',
    ],
  ],
  async run(context, args) {
    if (typeof args.confirm === 'string') {
      for (const flag of ['to', 'transport', 'wait', 'codeFile'] as const)
        if (args[flag] !== undefined)
          throw new UsageError(
            'CUTOVER_CONFIRM_ONLY',
            `--confirm takes no --${flag.replace('codeFile', 'code-file')}`,
            { hint: `deploy cutover ${String(args.app)} --confirm <code>` },
          );
      if (args.pair === true || args.plan === true || args.force === true)
        throw new UsageError('CUTOVER_CONFIRM_ONLY', "--confirm stands alone: it only records the new host's verdict", {
          hint: `deploy cutover ${String(args.app)} --confirm <code>`,
        });
      return confirmPairedCutover(context, String(args.app), args.confirm);
    }
    if (args.pair !== true && typeof args.to !== 'string')
      throw new UsageError('CUTOVER_NO_TARGET', 'name the host the app was migrated to with --to HOST', {
        hint: 'Or, after deploy migrate --pair, use --pair.',
      });
    if (args.pair !== true)
      for (const [key, flag] of [
        ['wait', '--wait'],
        ['codeFile', '--code-file'],
      ] as const)
        if (args[key] !== undefined)
          throw new UsageError('CUTOVER_PAIR_ONLY', `${flag} belongs to pairing mode`, {
            hint: `Add --pair, or drop ${flag}.`,
          });
    return runCutover(context, {
      app: String(args.app),
      to: typeof args.to === 'string' ? args.to : '',
      ...(typeof args.transport === 'string' ? { transport: args.transport } : {}),
      force: args.force === true,
      plan: args.plan === true,
      ...(typeof args.stallSeconds === 'number' ? { stallSeconds: args.stallSeconds } : {}),
      ...(args.pair === true ? { pair: true } : {}),
      ...(typeof args.wait === 'number' ? { wait: args.wait } : {}),
      ...(typeof args.codeFile === 'string' ? { codeFile: args.codeFile } : {}),
    });
  },
};
