import { DependencyError, describeExit, type Host } from '@deploykit/core';

/** Runs SQL as the host's database admin: the one way engine code reaches a database server. */
export interface SqlClient {
  readonly host: Host;
  /** Runs `sql` (on the client's stdin) against `database` (default: the server's admin database); returns stdout. */
  query(sql: string, database?: string): Promise<string>;
}

/** Runs one client command; a step runner uses it to check the command is in its plan. */
export type CommandRunner = (
  argv: readonly string[],
  input: string,
) => Promise<{ exitCode: number | null; signal?: string | null; stdout: string; stderr: string }>;

/**
 * An SqlClient over a Host: `clientArgv(database)` is the engine's admin client with SQL on stdin
 * (never in argv: it may carry password verifiers). A non-zero exit throws DependencyError with
 * the client's own words.
 */
export function createSqlClient(
  host: Host,
  clientArgv: (database?: string) => string[],
  runner?: CommandRunner,
): SqlClient {
  const run: CommandRunner =
    runner ?? ((argv, input) => host.run({ argv, input, timeoutMs: 30 * 60_000, maxBuffer: 256 * 1024 * 1024 }));
  return {
    host,
    async query(sql, database) {
      const argv = clientArgv(database);
      const result = await run(argv, sql);
      if (result.exitCode !== 0) {
        throw new DependencyError(
          'DB_QUERY_FAILED',
          `${argv[0]} on ${host.name} failed (${describeExit(result)}): ${result.stderr.trim().split('\n').slice(-3).join(' ')}`,
          {
            hint: 'Check that the database server runs and that the admin connection (PGHOST/PGUSER, or the MariaDB socket) works for deploy.',
          },
        );
      }
      return result.stdout;
    },
  };
}
