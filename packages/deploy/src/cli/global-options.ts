/** Options every command accepts (see docs/cli.md). */
export interface GlobalOptions {
  readonly appsRoot?: string;
  readonly stateDir?: string;
  readonly config?: string;
  readonly host?: string;
  readonly json: boolean;
  /** Machine mode for remote use: JSONL events on stdout, nothing else. */
  readonly jsonl: boolean;
  readonly verbose: boolean;
  readonly quiet: boolean;
  readonly dryRun: boolean;
  /** False with `--no-color`; colour also needs a terminal and no NO_COLOR in the environment. */
  readonly color: boolean;
  readonly events?: string;
  readonly logLevel: string;
  readonly logFile?: boolean;
}

/** Reads GlobalOptions out of a yargs argv object. */
export function readGlobalOptions(argv: Record<string, unknown>): GlobalOptions {
  const str = (key: string): string | undefined =>
    typeof argv[key] === 'string' && argv[key] !== '' ? (argv[key] as string) : undefined;
  return {
    ...(str('appsRoot') ? { appsRoot: str('appsRoot') } : {}),
    ...(str('stateDir') ? { stateDir: str('stateDir') } : {}),
    ...(str('config') ? { config: str('config') } : {}),
    ...(str('host') ? { host: str('host') } : {}),
    ...(str('events') ? { events: str('events') } : {}),
    json: argv.json === true,
    jsonl: argv.jsonl === true,
    verbose: argv.verbose === true,
    quiet: argv.quiet === true,
    dryRun: argv.dryRun === true,
    color: argv.color !== false,
    logLevel: str('logLevel') ?? 'info',
  };
}
