import type { Argv } from 'yargs';
import type { CommandContext } from './command-context.js';

/** What a command hands back to the entry point, which alone prints and picks the exit code. */
export interface CommandOutcome {
  readonly exitCode: number;
  /** Printed with --json (pretty JSON on stdout). */
  readonly json?: unknown;
  /** Printed without --json (stdout). */
  readonly text?: string;
}

/** One `deploy` verb: its yargs shape, examples for --help, and the action. */
export interface DeployCommand {
  readonly command: string;
  readonly describe: string;
  readonly examples?: readonly (readonly [string, string])[];
  readonly builder?: (yargs: Argv) => Argv;
  /** False for commands that must run where they are invoked (they name hosts themselves). */
  readonly remote?: boolean;
  /** False when the --json result is a document rather than a report (a JSON Schema): no `deployVersion` is added to it. */
  readonly versionInJson?: boolean;
  /**
   * True when the command cleans up itself on Ctrl+C/SIGTERM (it watches `context.signal`); the
   * first signal then aborts it instead of exiting at once, a second one exits immediately. A
   * function decides per invocation (`deploy stream receive` cleans up, `stream send` not yet).
   */
  readonly interruptible?: boolean | ((args: Readonly<Record<string, unknown>>) => boolean);
  /**
   * True when a run of the command leaves a run summary for `deploy runs` (`<state>/runs/<run id>.json`);
   * never for --plan or --dry-run. A function decides per invocation (`remove` without --yes only prints its plan).
   */
  readonly recordsRun?: boolean | ((args: Readonly<Record<string, unknown>>) => boolean);
  /**
   * True when the command may draw the live view of its run on a terminal (docs/cli.md): it writes
   * nothing to the terminal itself while it runs. A function decides per invocation.
   */
  readonly liveView?: boolean | ((args: Readonly<Record<string, unknown>>) => boolean);
  run(context: CommandContext, args: Record<string, unknown>): Promise<CommandOutcome>;
}
