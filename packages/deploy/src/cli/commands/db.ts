import { EXIT_CODES, UsageError } from '@deploykit/core';
import { loadApp } from '../../actions/load-app.js';
import type { RolesSqlPart } from '../../database/engine.js';
import { engineOfApp } from '../../database/engines.js';
import { createSqlClient } from '../../database/sql-client.js';
import type { DeployCommand } from '../deploy-command.js';

/** `deploy db roles-sql <app>`: a building block printing SQL that recreates the app's roles and grants. */
export const dbCommand: DeployCommand = {
  command: 'db <action> <app>',
  describe: "Database building blocks: `roles-sql` prints SQL recreating the app's own roles/users and grants",
  builder: (y) =>
    y
      .positional('action', { type: 'string', choices: ['roles-sql'], describe: 'What to do' })
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('part', {
        type: 'string',
        choices: ['users', 'grants', 'all'],
        default: 'all',
        describe:
          'users: accounts and grants needing no table (apply before the restore); grants: table/column/routine grants (after it)',
      }),
  examples: [
    [
      'deploy db roles-sql notes | ssh b psql -d postgres',
      'Carry the notes roles (with their password hashes) to host b',
    ],
  ],
  async run(context, args) {
    if (args.action !== 'roles-sql')
      throw new UsageError('DB_ACTION_UNKNOWN', `unknown db action ${String(args.action)}`, {
        hint: 'Known: roles-sql.',
      });
    const app = await loadApp(context.hostContext.appsRoot, String(args.app));
    const engine = engineOfApp(app);
    if (engine === undefined)
      throw new UsageError('DB_NONE', `${app.name} has no database (database.kind: none)`, {
        hint: 'Only apps with a database have roles to carry.',
      });
    const sql = await engine.exportRolesSql(
      createSqlClient(context.host, engine.clientArgv),
      app.manifest.database.roles ?? [],
      args.part as RolesSqlPart,
    );
    // The SQL carries password hashes: print it only to stdout (a pipe), never into events or logs.
    process.stdout.write(sql);
    return { exitCode: EXIT_CODES.ok };
  },
};
