import yargs, { type Argv } from 'yargs';
import { DeployError, EXIT_CODES, toDeployError, UsageError } from '@deploykit/core/errors';
// Only the process-group registry (the same module instance the commands' LocalHost uses), not the
// package's index with ssh and the deploy client: start-up time (bench/src/startup.ts).
import { signalAllProcessGroups } from '@deploykit/host/process-groups';
import { COMMAND_SPECS } from './commands/index.js';
import type { DeployCommand, CommandOutcome } from './deploy-command.js';
import { readGlobalOptions } from './global-options.js';
import { DEPLOY_VERSION } from '../version.js';

const EPILOGUE = `Exit codes: 0 ok, 1 a check or an app failed, 2 usage, 3 config, 4 script, 5 transport,
6 dependency, 7 conflict (lock held, folder exists), 70 internal error (our bug), 130 interrupted.
Docs: docs/cli.md, docs/app-folder.md, docs/transports.md`;

function addGlobalOptions(y: Argv): Argv {
  return y
    .option('apps-root', {
      type: 'string',
      describe: 'Folder holding app folders [env DEPLOY_APPS_ROOT, default /srv/apps]',
      global: true,
    })
    .option('state-dir', {
      type: 'string',
      describe: 'Folder for logs, locks and run records [env DEPLOY_STATE_DIR]',
      global: true,
    })
    .option('config', { type: 'string', describe: 'Global config file [env DEPLOY_CONFIG]', global: true })
    .option('host', {
      type: 'string',
      describe: 'Run the command on this named host (from the config) over ssh',
      global: true,
    })
    .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON on stdout', global: true })
    .option('jsonl', {
      type: 'boolean',
      default: false,
      describe: 'Machine mode: events as JSON lines on stdout (migrate, receive, stream)',
      global: true,
    })
    .option('events', { type: 'string', describe: 'Also write every event as JSON lines to this file', global: true })
    .option('verbose', {
      alias: 'v',
      type: 'boolean',
      default: false,
      describe: 'More detail, stack traces on errors',
      global: true,
    })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only results and errors', global: true })
    .option('dry-run', {
      type: 'boolean',
      default: false,
      describe: 'Say what would run without running it',
      global: true,
    })
    .option('color', {
      type: 'boolean',
      default: true,
      describe: 'Colour on a terminal; --no-color (or env NO_COLOR) turns it off',
      global: true,
    })
    .option('log-level', {
      type: 'string',
      default: 'info',
      choices: ['debug', 'info', 'warn', 'error'],
      global: true,
      hidden: true,
    });
}

/** Prints an error with its hint; returns the exit code for its kind. */
function reportError(error: unknown, json: boolean, verbose: boolean): number {
  const deployError = toDeployError(error);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: { kind: deployError.kind, code: deployError.code, message: deployError.message, hint: deployError.hint, details: deployError.details }, deployVersion: DEPLOY_VERSION }, null, 2)}\n`,
    );
  }
  process.stderr.write(`deploy: ${deployError.message}\n`);
  if (deployError.hint) process.stderr.write(`  next: ${deployError.hint}\n`);
  if (verbose || deployError.kind === 'internal') {
    const stack = (deployError.cause instanceof Error ? deployError.cause.stack : undefined) ?? deployError.stack;
    if (verbose && stack) process.stderr.write(`${stack}\n`);
  }
  return EXIT_CODES[deployError.kind];
}

/**
 * A command's --json result with the version of the deploy that made it: a top-level object gets a
 * `deployVersion` field after its own (none of them has one of its own meaning); documents that are
 * not reports (`deploy schema`, `versionInJson: false`) and arrays are printed as they are.
 */
export function withDeployVersion(json: unknown, command: Pick<DeployCommand, 'versionInJson'>): unknown {
  if (command.versionInJson === false || json === null || typeof json !== 'object' || Array.isArray(json)) return json;
  return { ...(json as Record<string, unknown>), deployVersion: DEPLOY_VERSION };
}

function print(outcome: CommandOutcome, command: DeployCommand, json: boolean, jsonl: boolean): void {
  if (json && outcome.json !== undefined)
    process.stdout.write(`${JSON.stringify(withDeployVersion(outcome.json, command), null, 2)}\n`);
  // In machine mode stdout carries JSON lines only (the events said it all).
  else if (outcome.text && !jsonl)
    process.stdout.write(outcome.text.endsWith('\n') ? outcome.text : `${outcome.text}\n`);
}

/**
 * Leaves the run summary `deploy runs` lists and `deploy runs show` prints again: the report as it
 * is printed and as --json gives it. A state dir that cannot take it only costs the listing: a warning.
 */
async function recordRun(
  stateDir: string,
  runId: string,
  command: DeployCommand,
  args: Record<string, unknown>,
  started: Date,
  exitCode: number,
  outcome: CommandOutcome,
): Promise<void> {
  const { writeRunSummary } = await import('../run-summary.js');
  const apps = typeof args.app === 'string' ? [args.app] : Array.isArray(args.apps) ? args.apps.map(String) : [];
  try {
    await writeRunSummary(stateDir, {
      runId,
      command: command.command.split(' ')[0]!,
      apps,
      ...(typeof args.to === 'string' && args.to !== '' ? { target: args.to } : {}),
      outcome: exitCode === 0 ? 'ok' : exitCode === 130 ? 'interrupted' : 'failed',
      exitCode,
      startedAt: started.toISOString(),
      durationMs: Date.now() - started.getTime(),
      deployVersion: DEPLOY_VERSION,
      ...(outcome.text !== undefined ? { text: outcome.text } : {}),
      ...(outcome.json !== undefined ? { json: withDeployVersion(outcome.json, command) } : {}),
    });
  } catch (error) {
    process.stderr.write(
      `deploy: warning: could not write the run summary to ${stateDir}/runs: ${(error as Error).message}\n`,
    );
  }
}

/** The `deploy` entry point: parses argv, runs one command, maps errors to messages and exit codes. */
export async function main(argv: readonly string[]): Promise<number> {
  let selected: { command: DeployCommand; args: Record<string, unknown> } | undefined;
  let usageFailure: string | undefined;
  let completion = false;
  const parser = addGlobalOptions(yargs([...argv]))
    .scriptName('deploy')
    .usage(
      'deploy <command> [options]\n\nRun apps as app working folders on single hosts,\nand move them between hosts by streaming.',
    )
    .strict()
    .demandCommand(1, 'Name a command; `deploy --help` lists them.')
    .recommendCommands()
    .epilogue(EPILOGUE)
    // A fixed width when not on a terminal: yargs would otherwise break words mid-line in pipes.
    .wrap(process.stdout.isTTY ? Math.min(120, process.stdout.columns ?? 100) : 120)
    .fail((message, error) => {
      if (error) throw error;
      usageFailure = message;
    })
    .help()
    .alias('help', 'h')
    .version('version', 'Print the version of deploy', DEPLOY_VERSION);
  for (const spec of COMMAND_SPECS) {
    let loaded: DeployCommand | undefined;
    parser.command({
      command: spec.command,
      describe: spec.describe,
      // The command's module loads here, when yargs picks this command (to run it or print its --help).
      builder: async (y: Argv) => {
        loaded = await spec.load();
        let built = loaded.builder ? loaded.builder(y) : y;
        for (const [example, description] of loaded.examples ?? []) built = built.example(example, description);
        return built;
      },
      handler: (args) => {
        selected = { command: loaded!, args: args as Record<string, unknown> };
      },
    });
  }
  // Not yargs' .completion(): its command prints the script even for `completion --help`. Completions
  // themselves (`deploy --get-yargs-completions ...`, what the script calls) are answered by yargs anyway.
  parser.command({
    command: 'completion',
    describe: 'Print a shell completion script for deploy (bash; zsh when run from zsh)',
    builder: (y: Argv) =>
      y
        .example('source <(deploy completion)', 'Complete commands and options in this shell')
        .example(
          'deploy completion >> ~/.bashrc',
          'In every new bash (zsh: SHELL=/bin/zsh deploy completion >> ~/.zshrc)',
        ),
    handler: () => {
      completion = true; // printed once the whole command line proved valid
    },
  });
  const wantsJson = argv.includes('--json');
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  try {
    await parser.parseAsync();
  } catch (error) {
    return reportError(error, wantsJson, verbose);
  }
  if (usageFailure !== undefined) {
    return reportError(
      new UsageError('USAGE', usageFailure, { hint: 'See `deploy --help` or `deploy <command> --help`.' }),
      wantsJson,
      verbose,
    );
  }
  if (completion) parser.showCompletionScript();
  if (selected === undefined) return EXIT_CODES.ok; // --help, --version or completion printed
  const options = readGlobalOptions(selected.args);
  if (options.host !== undefined && selected.command.remote !== false) {
    try {
      const { delegateToHost } = await import('./delegate.js');
      return await delegateToHost(options, argv);
    } catch (error) {
      return reportError(error, options.json, options.verbose);
    }
  }
  const abort = new AbortController();
  const declared = selected.command.interruptible;
  const interruptible = typeof declared === 'function' ? declared(selected.args) : declared === true;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interruptible && !abort.signal.aborted) {
      process.stderr.write(
        `\ndeploy: ${signal}: stopping and undoing what this run changed (${signal} again to exit at once)\n`,
      );
      abort.abort(new Error(`interrupted by ${signal}`));
      process.once(signal, onSignal);
      return;
    }
    signalAllProcessGroups('SIGTERM');
    process.stderr.write(`\ndeploy: interrupted by ${signal}; stopped every process it started\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const { createCommandContext } = await import('./command-context.js');
    const live =
      typeof selected.command.liveView === 'function'
        ? selected.command.liveView(selected.args)
        : selected.command.liveView === true;
    let outcome: CommandOutcome;
    {
      // Disposed before the result is printed: the live view leaves the terminal first.
      await using context = await createCommandContext(options, abort.signal, { live });
      const declaredRecord = selected.command.recordsRun;
      const records =
        (typeof declaredRecord === 'function' ? declaredRecord(selected.args) : declaredRecord === true) &&
        !options.dryRun &&
        selected.args.plan !== true;
      const started = new Date();
      try {
        outcome = await selected.command.run(context, selected.args);
      } catch (error) {
        // A run that failed with an error is a run too: its summary holds the error as it is printed.
        if (records) {
          const failure = toDeployError(error);
          const text = `deploy: ${failure.message}${failure.hint ? `\n  next: ${failure.hint}` : ''}`;
          const json = {
            ok: false,
            error: {
              kind: failure.kind,
              code: failure.code,
              message: failure.message,
              hint: failure.hint,
              details: failure.details,
            },
          };
          await recordRun(
            context.hostContext.stateDir,
            context.runId,
            selected.command,
            selected.args,
            started,
            abort.signal.aborted ? 130 : EXIT_CODES[failure.kind],
            { exitCode: EXIT_CODES[failure.kind], text, json },
          );
        }
        throw error;
      }
      if (records)
        await recordRun(
          context.hostContext.stateDir,
          context.runId,
          selected.command,
          selected.args,
          started,
          abort.signal.aborted ? 130 : outcome.exitCode,
          outcome,
        );
    }
    print(outcome, selected.command, options.json, options.jsonl);
    return abort.signal.aborted ? 130 : outcome.exitCode;
  } catch (error) {
    if (!(error instanceof DeployError)) signalAllProcessGroups('SIGTERM');
    const code = reportError(error, options.json, options.verbose);
    // An interrupted command that cleaned up and then failed was still interrupted.
    return abort.signal.aborted ? 130 : code;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
