import { readFile, rm, writeFile } from 'node:fs/promises';
import {
  ConfigError,
  DependencyError,
  EXIT_CODES,
  newRunId,
  formatBytes,
  formatDuration,
  displayArgv,
  revealValue,
  UsageError,
  type Host,
  type TransportName,
} from '@deploykit/core';
import { DeployClient, LocalHost, makeControlDir } from '@deploykit/host';
import { loadGlobalConfig } from '@deploykit/manifest';
import { listTransportNames, locateFflBinary, resolveTransport, type Transport } from '@deploykit/transport';
import { loadApp } from '../../actions/load-app.js';
import { localDeployCommand } from '../../install-paths.js';
import { newArchiveName } from '../../phase-env.js';
import { runPhase } from '../../script-runner.js';
import { readDeployVersion } from '../../migrate/host-facts.js';
import { Journal, journalPath } from '../../migrate/journal.js';
import { DEFAULT_KEEP_MIGRATION_ARCHIVES } from '../../migrate/archive-retention.js';
import { runSourcePreflight } from '../../migrate/source-preflight.js';
import {
  planMigration,
  runSourceMigration,
  type MigrateReport,
  type PairingOptions,
  type SourceRunOptions,
} from '../../migrate/source-run.js';
import type { SourcePlan } from '../../migrate/source-plan.js';
import { renderTargetAftermath, renderVerification } from '../../receive/render-target-report.js';
import type { TargetReport } from '../../receive/target-run.js';
import { resolveNamedHost } from '../delegate.js';
import type { CommandContext } from '../command-context.js';
import type { DeployCommand } from '../deploy-command.js';
import { createStdoutJsonlListener } from '../../render/renderers.js';
import { renderTable } from '../table.js';
import { DEPLOY_VERSION, isCompatibleDeployVersion } from '../../version.js';

export { localDeployCommand } from '../../install-paths.js';

/** The health checks the target ran, by name (the app declares them): only what really ran is ticked. */
function describeHealthRows(target: TargetReport | undefined): string {
  const names = (target?.verification.checks ?? [])
    .filter((check) => check.name.startsWith('health '))
    .map((check) => check.name.slice('health '.length));
  return names.length > 0 ? `: ${names.join(', ')}` : '';
}

/** Renders a plan for humans: the source's steps with their commands, then the target's. */
export function renderPlan(plan: SourcePlan, target?: TargetReport, notes: readonly string[] = []): string {
  const lines = [
    `Plan: migrate ${plan.app} to ${plan.target} over ${plan.transport} (run ${plan.runId}, archive ${plan.archive})`,
  ];
  if (target?.layout)
    lines.push(
      `  ${plan.target}: ${formatBytes(target.layout.freeBytes)} free in ${target.layout.appsRoot}, needs ${formatBytes(target.layout.neededBytes)}; ${plan.transport === 'scp' ? 'the bundle is staged as a file on both hosts (scp copies a file)' : 'nothing is staged on either host'}`,
    );
  for (const note of notes) lines.push(`  note: ${note}`);
  lines.push(`On this host:`);
  plan.steps.forEach((step, index) => {
    lines.push(`${String(index + 1).padStart(2)}. [${step.id}] ${step.title}`);
    if (step.argv.length > 0) lines.push(`      $ ${displayArgv(step.argv)}`);
  });
  if (target?.plan) {
    lines.push(`On ${plan.target} (deploy receive ${plan.app}):`);
    target.plan.forEach((step, index) => {
      lines.push(`${String(index + 1).padStart(2)}. [${step.id}] ${step.title}`);
      for (const argv of step.commands) lines.push(`      $ ${displayArgv(argv)}`);
    });
  }
  return lines.join('\n');
}

/** Renders the final report: parts, verification, what the target did, and the cutover checklist. */
export function renderReport(report: MigrateReport): string {
  const lines: string[] = [];
  if (report.parts.length > 0) {
    lines.push(
      renderTable(
        ['PART', 'STATUS', 'BYTES', 'TIME', 'RATE', 'PATH', 'ATTEMPTS'],
        report.parts.map((part) => [
          part.id,
          part.status,
          formatBytes(part.bytes),
          formatDuration(part.elapsedMs),
          part.status === 'reused' ? '-' : `${formatBytes(Math.round(part.rate))}/s`,
          part.path,
          String(part.attempts),
        ]),
      ),
    );
  }
  const target = report.targetReport;
  if (target && target.verification.checks.length > 0) lines.push('', renderVerification(target));
  if (report.ok && report.pairing) {
    lines.push(
      '',
      `Delivered the bundle of ${report.app} to ${report.target} in ${formatDuration(report.durationMs)}${report.pairing.pullMs !== undefined ? ` (pulled in ${formatDuration(report.pairing.pullMs)}${report.pairing.path ? `, path ${report.pairing.path}` : ''})` : ''}; this host was not changed.`,
      `The verification is on the new host's screen: its deploy receive checks every file and row, installs, starts and health-checks the app, rolls back there on failure, and ends with its report and the cutover checklist.`,
      `  [ ] read that report on the new host (exit 0 = the app serves there); check the app there while it serves here`,
      `  [ ] cut over: deploy cutover ${report.app} --pair${report.target === 'the new host' ? '' : ` --to ${report.target}`} (a second link and code: only what changed since; writes stop here only while it goes)`,
      `  [ ] point DNS at the new host, watch its logs, then retire this copy`,
    );
  } else if (report.ok) {
    lines.push(
      '',
      `Migrated ${report.app} to ${report.target} in ${formatDuration(report.durationMs)}${report.attempts > 1 ? ` (${report.attempts} sessions)` : ''}${report.stagedBytes > 0 ? `; ${formatBytes(report.stagedBytes)} staged as a file on each side` : ''}. Cutover checklist:`,
      `  [x] health checks pass on ${report.target}${target?.baseUrl ? ` (${target.baseUrl})` : ''}${describeHealthRows(target)}`,
      '  [x] files: every volume file matches the archive (count, bytes, SHA-256)',
      '  [x] database: every table has the source row count at backup time',
      `  [ ] check it there while ${report.app} still serves here (writes here keep coming: the copy there is as of ${report.archive})`,
      `  [ ] cut over: deploy cutover ${report.app} --to ${report.target} (stops writes here, sends only what changed and the database, starts it there; serves here again if that fails)`,
      `  [ ] point DNS at ${report.target}, watch its logs, then retire the source copy`,
    );
    if (target) lines.push(...renderTargetAftermath(target));
  } else if (report.failure) {
    lines.push(
      '',
      `Migration FAILED at step [${report.failure.step}]${report.failure.stage ? ` (${report.failure.stage})` : ''}: ${report.failure.message}`,
      ...(report.failure.hint ? [`  next: ${report.failure.hint}`] : []),
    );
    if (target) lines.push(...renderTargetAftermath(target));
    else if (report.pairing)
      lines.push(
        `  the new host's deploy receive says what happened there (it rolls back on its own when its input ends); this host was not changed`,
      );
    else
      lines.push(
        `  ${report.target} did not report (it rolls back on its own when its input ends); the source was not changed`,
      );
  }
  if (report.archives?.error) lines.push(`  warning: old migration archives were not pruned: ${report.archives.error}`);
  else if (report.archives && report.archives.pruned.length > 0)
    lines.push(
      `Pruned ${report.archives.pruned.length} old migration archive(s) on this host (keeping the newest ${report.archives.keep}${report.archives.protected.length > 0 ? `, and ${report.archives.protected.join(', ')} for a cutover` : ''}): ${report.archives.pruned.join(', ')}`,
    );
  lines.push(`Run record: ${report.journal}${target?.journal ? `; on ${report.target}: ${target.journal}` : ''}`);
  return lines.join('\n');
}

/** The host to migrate to, and how `deploy` runs there: ssh, or (local) this machine with the host's roots and env. */
export async function resolveTarget(
  name: string,
  transport: Transport,
  configPath: string | undefined,
  runId: string,
): Promise<{ host: Host; deploy: DeployClient; cleanup: () => Promise<void> }> {
  if (transport.name !== 'local') {
    // The ssh master's socket dir carries the run id: a later run finds it if this one is killed.
    // It is short enough for a socket path whatever TMPDIR is (then under /tmp or /run/user/<uid>).
    const controlDir = makeControlDir(`dk-${runId}-cm-`);
    const host = await resolveNamedHost(name, configPath, controlDir);
    return { host, deploy: new DeployClient(host), cleanup: () => rm(controlDir, { recursive: true, force: true }) };
  }
  const { config } = await loadGlobalConfig(configPath);
  const entry = config.hosts[name];
  if (entry === undefined)
    throw new ConfigError('HOST_UNKNOWN', `no host named "${name}" in the global config`, {
      hint: `Known hosts: ${Object.keys(config.hosts).join(', ') || 'none'}.`,
    });
  if (entry.apps_root === undefined || entry.state_dir === undefined) {
    throw new ConfigError(
      'LOCAL_TARGET_ROOTS',
      `host ${name} has no apps_root and state_dir in the config: the local transport needs them (another apps root on this machine)`,
      {
        hint: 'Add apps_root and state_dir (and env for its database connection) to that host entry, see docs/config.md.',
      },
    );
  }
  const host = new LocalHost(name, {
    DEPLOY_HOST_NAME: name,
    ...(entry.address ? { DEPLOY_HOST_ADDRESS: entry.address } : {}),
    ...(entry.env ?? {}),
  });
  return {
    host,
    deploy: new DeployClient(host, {
      command: localDeployCommand(),
      globalArgs: [
        '--apps-root',
        entry.apps_root,
        '--state-dir',
        entry.state_dir,
        ...(configPath ? ['--config', configPath] : []),
      ],
    }),
    cleanup: async () => undefined,
  };
}

/**
 * Refuses a target whose deploy is missing (DeployClient's DEPLOY_MISSING names `deploy setup`) or
 * of another major.minor than this one (decision 0009), naming both versions.
 */
export async function checkTargetDeploy(deploy: DeployClient, to: string): Promise<void> {
  const theirs = await deploy.version();
  if (!isCompatibleDeployVersion(DEPLOY_VERSION, theirs)) {
    throw new DependencyError(
      'DEPLOY_VERSION_MISMATCH',
      `deploy ${theirs} on ${to} cannot take a migration from deploy ${DEPLOY_VERSION} here: both need the same major.minor`,
      {
        hint: `Run \`deploy setup ${to}\` to install ${DEPLOY_VERSION} there (docs/decisions/0009-release-and-setup.md).`,
        details: { here: DEPLOY_VERSION, target: theirs },
      },
    );
  }
}

/** Session mode (--to): the target host, and no pairing-only flag. */
export function checkSessionArgs(args: Record<string, unknown>, thisHost: string): string {
  if (typeof args.to !== 'string' || args.to === '')
    throw new UsageError('MIGRATE_NO_TARGET', 'name the host to migrate to with --to HOST', {
      hint: 'Or, for a new host this one cannot SSH into, use --pair (see deploy migrate --help).',
    });
  for (const [key, flag] of [
    ['wait', '--wait'],
    ['codeFile', '--code-file'],
  ] as const) {
    if (args[key] !== undefined)
      throw new UsageError('MIGRATE_PAIR_ONLY', `${flag} belongs to pairing mode`, {
        hint: `Add --pair, or drop ${flag}.`,
      });
  }
  if (args.to === thisHost)
    throw new ConfigError('MIGRATE_SAME_HOST', `${args.to} is this host`, {
      hint: 'Name another host as --to (or another apps root on this machine as a host with the local transport).',
    });
  return args.to;
}

/** Default of --wait: how long a pairing link waits for the new host. */
const DEFAULT_PAIR_WAIT_SECONDS = 1800;

/**
 * Pairing mode's checks and its code hand-over, before anything runs: ffl here, flags that make
 * sense, and a place for the pickup code (this terminal, or a new 0600 file) - never the event bus.
 */
/** What `deploy migrate` and `deploy cutover` choose for a source run; the rest comes from the command's context. */
export type SourceRunChoices = Pick<
  SourceRunOptions,
  | 'app'
  | 'targetName'
  | 'transport'
  | 'runId'
  | 'newArchive'
  | 'withHistory'
  | 'replace'
  | 'resume'
  | 'stallSeconds'
  | 'retries'
  | 'preflight'
  | 'cutover'
> & {
  readonly target: Awaited<ReturnType<typeof resolveTarget>> | undefined;
  readonly pairing: PairingOptions | undefined;
};

/** The source run's options as both commands build them: the choices plus what every source run takes from here. */
export async function buildSourceRunOptions(
  context: CommandContext,
  { target, pairing, cutover, ...choices }: SourceRunChoices,
): Promise<SourceRunOptions> {
  const { app } = choices;
  return {
    ...choices,
    manifestText: await readFile(app.manifestPath, 'utf8'),
    source: context.hostContext,
    localHost: context.host,
    ...(target ? { targetHost: target.host, targetDeploy: target.deploy } : {}),
    ...(pairing ? { pairing, readinessSeconds: pairing.waitSeconds } : {}),
    transportOptions: {},
    keepArchives:
      app.manifest.migrate.keep_archives ??
      context.config.defaults.keep_migration_archives ??
      DEFAULT_KEEP_MIGRATION_ARCHIVES,
    deployVersion: await readDeployVersion(),
    deployCommand: localDeployCommand(),
    ...(context.configPath ? { configPath: context.configPath } : {}),
    bus: context.bus,
    journal: new Journal(journalPath(context.hostContext.stateDir, app.name, choices.runId)),
    signal: context.signal,
    ...(cutover ? { cutover } : {}),
  };
}

/** The run record's first line: what ran, from where to where (`extra`: what the command adds). */
export async function writeRunLine(options: SourceRunOptions, extra: Record<string, unknown>): Promise<void> {
  await options.journal.write({
    step: 'run',
    status: 'ok',
    detail: {
      deployVersion: options.deployVersion,
      app: options.app.name,
      target: options.targetName,
      transport: options.transport.name,
      archive: options.newArchive,
      ...extra,
    },
  });
}

export async function preparePairing(args: Record<string, unknown>, host: Host): Promise<PairingOptions> {
  if (typeof args.transport === 'string' && args.transport !== 'ffl')
    throw new UsageError(
      'MIGRATE_PAIR_TRANSPORT',
      `--pair shares the bundle with ffl; --transport ${args.transport} needs a session with the target`,
      { hint: 'Drop --transport, or drop --pair and name the target with --to.' },
    );
  if (args.replace === true)
    throw new UsageError('MIGRATE_PAIR_REPLACE', "with --pair, replacing is the new host's choice", {
      hint: 'Run `deploy receive <app> --from <link> --replace` there instead.',
    });
  if (args.plan !== true) await locateFflBinary(host);
  const waitSeconds = typeof args.wait === 'number' ? args.wait : DEFAULT_PAIR_WAIT_SECONDS;
  if (!(waitSeconds > 0))
    throw new UsageError('MIGRATE_PAIR_WAIT', `--wait must be a number of seconds above 0 (got ${String(args.wait)})`, {
      hint: 'E.g. --wait 600 keeps the link open for 10 minutes.',
    });
  const codeFile = typeof args.codeFile === 'string' && args.codeFile !== '' ? args.codeFile : undefined;
  if (codeFile === undefined && !process.stderr.isTTY && args.plan !== true) {
    throw new UsageError(
      'MIGRATE_PAIR_NO_TERMINAL',
      'pairing mode shows the pickup code on this terminal, and there is none',
      {
        hint: 'Run it in a terminal, or pass --code-file FILE (a new file, mode 0600) and hand the code over from there.',
      },
    );
  }
  return {
    waitSeconds,
    async deliverCode(code, link, command) {
      if (codeFile !== undefined) {
        // A new file only: an existing one may be readable by others or be someone else's.
        await writeFile(codeFile, `${revealValue(code)}\n`, { mode: 0o600, flag: 'wx' }).catch(
          (error: NodeJS.ErrnoException) => {
            throw new UsageError(
              'MIGRATE_CODE_FILE',
              `cannot create the code file ${codeFile}: ${error.code === 'EEXIST' ? 'it exists' : error.message}`,
              { hint: 'Name a new file in a directory only you can read.' },
            );
          },
        );
        process.stderr.write(
          `\nPickup code written to ${codeFile} (mode 0600). On the new host run:\n\n    ${command}\n\n`,
        );
        return;
      }
      // Straight to the terminal: not an event (the run log and --events files would keep it).
      process.stderr.write(
        `\n  Link:         ${link}\n  Pickup code:  ${revealValue(code)}   (type it on the new host when deploy receive asks; shown only here)\n\n`,
      );
    },
  };
}

/** `deploy migrate <app> --to <host>`: move a running app to another host by streaming, then verify it there. */
export const migrateCommand: DeployCommand = {
  command: 'migrate <app>',
  describe:
    'Move an app to another host: one bundle (folder, volumes, database, roles) streamed into a target-side run that installs, verifies and starts it there',
  interruptible: true,
  recordsRun: true,
  // Pairing writes the pickup code to the terminal itself; a plan is printed, not run.
  liveView: (args) => args.pair !== true && args.plan !== true,
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('to', {
        type: 'string',
        describe: 'Target host (named in the global config); with --pair only a name for the new host in messages',
      })
      .option('pair', {
        type: 'boolean',
        default: false,
        describe:
          'Pairing mode, for a new host this one cannot SSH into: share the bundle with ffl (one link, one pickup code shown only on this terminal) and print the command to run there',
      })
      .option('wait', {
        type: 'number',
        describe: 'With --pair: how long the link waits for the new host to start pulling, in seconds [default 1800]',
      })
      .option('code-file', {
        type: 'string',
        describe:
          'With --pair: write the pickup code to this new file (mode 0600) instead of showing it on the terminal',
      })
      .option('transport', {
        type: 'string',
        choices: listTransportNames(),
        describe: "How the bytes travel [default: the app's migrate.transport]",
      })
      .option('with-history', {
        type: 'boolean',
        describe: "Also carry the app's Borg repository with every archive [default: the app's migrate.with_history]",
      })
      .option('plan', {
        type: 'boolean',
        default: false,
        describe: 'Print the exact steps and commands on both hosts, change nothing',
      })
      .option('replace', {
        type: 'boolean',
        default: false,
        describe:
          'Replace the app on the target: it is stopped and kept aside until the new copy is verified and healthy, and put back if not',
      })
      .option('resume', {
        type: 'boolean',
        default: true,
        describe:
          'Reuse verified parts an earlier failed run left on the target (and its archive); --no-resume starts afresh',
      })
      .option('stall-seconds', {
        type: 'number',
        describe: 'Abort a transfer when no byte moved for this long [default 60]',
      })
      .option('retries', {
        type: 'number',
        describe:
          'After a transport failure, start this many new sessions, each resuming after the verified parts [default 2]',
      })
      .option('cutover', {
        type: 'boolean',
        default: false,
        describe:
          'When the migration succeeded, cut over at once (deploy cutover): writes stop here only for what changed since it',
      }),
  examples: [
    ['deploy migrate notes --to b --plan', 'Show every step and command on both hosts first'],
    ['deploy migrate notes --to b', 'Move notes to host b over one ssh session, verified there'],
    ['deploy migrate notes --to b --replace', 'Replace the copy on b; the old one comes back if the new one fails'],
    [
      'deploy migrate notes --to b --transport scp --with-history --json',
      'The legacy file mode, with the Borg history, report as JSON',
    ],
    [
      'deploy migrate notes --to b --cutover',
      'Both phases in one go: copy while serving, then stop writes only for the delta',
    ],
    [
      'deploy migrate notes --pair',
      'To a fresh host without SSH trust: prints `deploy receive notes --from <link>` to run there, and the pickup code',
    ],
  ],
  async run(context, args) {
    // Machine mode: every event, the target's relayed ones and the report (`migrate.report`) included.
    if (context.options.jsonl) context.bus.on(createStdoutJsonlListener());
    const pair = args.pair === true;
    // Pairing is two operators at two terminals: the cutover is a second share with its own code, started
    // after the new host's operator saw the migration healthy there (decision 0011).
    if (pair && args.cutover === true)
      throw new UsageError(
        'MIGRATE_PAIR_CUTOVER',
        'with --pair the cutover is a second pairing: the source cannot hear when the new host has the app healthy',
        {
          hint: `Drop --cutover. When the new host's deploy receive reports the app healthy, run deploy cutover ${String(args.app)} --pair here (a new link and code).`,
        },
      );
    const app = await loadApp(context.hostContext.appsRoot, String(args.app));
    const transport = resolveTransport(
      pair
        ? 'ffl'
        : typeof args.transport === 'string'
          ? args.transport
          : (app.manifest.migrate.transport as TransportName),
    );
    const to = pair
      ? typeof args.to === 'string' && args.to !== ''
        ? args.to
        : 'the new host'
      : checkSessionArgs(args, context.hostContext.hostName);
    const pairing = pair ? await preparePairing(args, context.host) : undefined;
    const withHistory = typeof args.withHistory === 'boolean' ? args.withHistory : app.manifest.migrate.with_history;
    const target = pair
      ? undefined
      : await resolveTarget(to, transport, context.configPath ?? context.options.config, context.runId);
    try {
      // Before anything is read or sent: the target's deploy must exist and speak our version.
      if (target && transport.name !== 'local') await checkTargetDeploy(target.deploy, to);
      const preflight = await runSourcePreflight({ app, source: context.hostContext, host: context.host, withHistory });
      const archive = newArchiveName(app);
      const stallSeconds =
        typeof args.stallSeconds === 'number' ? args.stallSeconds : context.config.defaults.stall_seconds;
      // Transports that start the target only once the bytes exist check their tools and space first;
      // ssh and local learn all of it from the target-side run itself, in the one session.
      if (target && !transport.interactive) {
        await transport.preflight({
          stream: app.name,
          source: context.host,
          target: target.host,
          deployCommand: target.deploy.command,
          estimatedBytes: Object.values(preflight.estimates).reduce((a, b) => a + b, 0),
          options: {},
        });
      }
      const options = await buildSourceRunOptions(context, {
        app,
        target,
        pairing,
        targetName: to,
        transport,
        runId: context.runId,
        newArchive: archive,
        withHistory,
        replace: args.replace === true,
        resume: args.resume !== false && !pair,
        stallSeconds,
        retries: pair ? 0 : typeof args.retries === 'number' ? args.retries : context.config.defaults.retries,
        preflight,
      });
      if (args.plan === true) {
        const planned = await planMigration(options);
        return {
          exitCode: planned.target?.ok === false ? EXIT_CODES.conflict : EXIT_CODES.ok,
          json: { plan: planned.plan, target: planned.target, notes: preflight.notes },
          text: renderPlan(planned.plan, planned.target, preflight.notes),
        };
      }
      const size = formatBytes(Object.values(preflight.estimates).reduce((a, b) => a + b, 0));
      context.bus.emit('migrate.start', {
        app: app.name,
        message: pair
          ? `pairing ${app.name} with a new host over ffl: about ${size}; run ${context.runId}`
          : `migrating ${app.name} to ${to} over ${transport.name}: about ${size}; run ${context.runId}`,
      });
      for (const note of preflight.notes) context.bus.emit('migrate.note', { app: app.name, message: `note: ${note}` });

      // The run record exists before the app's own bin/migrate runs (it gets its path).
      await writeRunLine(options, { replace: options.replace, pairing: pair });
      // The app's own bin/migrate may replace the default steps (exit 0) or let them run (exit 75).
      const hook = await runPhase({
        app,
        phase: 'migrate',
        host: context.host,
        bus: context.bus,
        context: { runId: context.runId, role: 'source', host: context.hostContext, archive },
        extraEnv: {
          DEPLOY_MIGRATE_TARGET: pair ? '' : to,
          DEPLOY_MIGRATE_TRANSPORT: transport.name,
          DEPLOY_MIGRATE_RUN_RECORD: options.journal.path,
          ...(pair ? { DEPLOY_MIGRATE_PAIRING: '1' } : {}),
        },
      });
      if (hook.status === 'failed') {
        await options.journal.write({ step: 'bin/migrate', status: 'failed', detail: { exitCode: hook.exitCode } });
        return {
          exitCode: EXIT_CODES.script,
          json: { ok: false, hook },
          text: `${app.name}:migrate (the app's own bin/migrate) failed: ${hook.reason}\n${hook.stderrTail}`,
        };
      }
      if (hook.status === 'ok') {
        await options.journal.write({ step: 'bin/migrate', status: 'ok', detail: { replacedDefaultSteps: true } });
        return {
          exitCode: EXIT_CODES.ok,
          json: { ok: true, replacedBy: 'bin/migrate' },
          text: `${app.name}: bin/migrate did the migration itself (exit 0); default steps skipped`,
        };
      }
      const { report } = await runSourceMigration(options);
      context.bus.emit('migrate.report', {
        app: app.name,
        level: 'debug',
        message: report.ok ? 'migrated' : 'migration failed',
        data: { report },
      });
      const kind = report.failure?.kind as keyof typeof EXIT_CODES | undefined;
      const exitCode = report.ok
        ? EXIT_CODES.ok
        : report.failure?.code === 'INTERRUPTED'
          ? 130
          : kind !== undefined && kind in EXIT_CODES
            ? EXIT_CODES[kind]
            : EXIT_CODES.transport;
      if (!report.ok || args.cutover !== true) return { exitCode, json: report, text: renderReport(report) };
      // Phase 2 at once: its own run id and run record, on top of the archive this migration just used.
      const { runCutover } = await import('./cutover.js');
      context.bus.emit('migrate.cutover', {
        app: app.name,
        message: `migrated; cutting over to ${to} now (--cutover)`,
      });
      const cutover = await runCutover(
        context,
        {
          app: app.name,
          to,
          transport: transport.name,
          force: false,
          plan: false,
          ...(typeof args.stallSeconds === 'number' ? { stallSeconds: args.stallSeconds } : {}),
        },
        newRunId(),
      );
      return {
        exitCode: cutover.exitCode,
        json: { migration: report, cutover: cutover.json },
        text: `${renderReport(report)}\n\n${cutover.text}`,
      };
    } finally {
      await target?.host.close();
      await target?.cleanup();
    }
  },
};
