import type { DeployCommand } from '../deploy-command.js';

/**
 * A `deploy` verb as the entry point registers it before it runs: its yargs command string and
 * description (all that `deploy --help` and completion need), and how to load the rest. A command's
 * module (its options, examples and action, with every package it imports) is loaded only when that
 * command runs or prints its own --help: loading all of them cost `deploy --help` about half a second.
 * `command` and `describe` must equal the loaded command's (commands.test.ts checks).
 */
export interface CommandSpec {
  readonly command: string;
  readonly describe: string;
  load(): Promise<DeployCommand>;
}

const phase = (name: string) => async (): Promise<DeployCommand> =>
  (await import('./phases.js')).phaseCommands.find((c) => c.command.split(' ')[0] === name)!;

/** Every `deploy` verb, in the order --help lists them. */
export const COMMAND_SPECS: readonly CommandSpec[] = [
  {
    command: 'list',
    describe: 'List the app folders under the apps root',
    load: async () => (await import('./list.js')).listCommand,
  },
  {
    command: 'show <app>',
    describe: 'Show an app: its manifest with defaults applied, folder and Borg repository',
    load: async () => (await import('./show.js')).showCommand,
  },
  {
    command: 'validate [apps..]',
    describe: 'Validate app folders: schema, cross-field rules, files and scripts on disk',
    load: async () => (await import('./validate.js')).validateCommand,
  },
  {
    command: 'init <name>',
    describe: 'Create an app folder from the sample app (or --from DIR)',
    load: async () => (await import('./init.js')).initCommand,
  },
  {
    command: 'install [apps..]',
    describe: "Run each app's bin/install (dependencies, database, roles; idempotent)",
    load: phase('install'),
  },
  { command: 'start [apps..]', describe: 'Start apps with their bin/start', load: phase('start') },
  {
    command: 'stop [apps..]',
    describe: 'Stop apps with their bin/stop (exit 75 = was not running)',
    load: phase('stop'),
  },
  {
    command: 'backup [apps..]',
    describe: 'Make a fresh Borg archive of each app (volumes and database) with its bin/backup',
    load: phase('backup'),
  },
  {
    command: 'maintenance <app> <mode>',
    describe: 'Stop or resume an app taking writes without stopping it: its bin/maintenance on (a 503 page) or off',
    load: async () => (await import('./phases.js')).maintenanceCommand,
  },
  {
    command: 'restore <app>',
    describe: "Restore an app's volumes and database from a Borg archive with its bin/restore",
    load: async () => (await import('./phases.js')).restoreCommand,
  },
  {
    command: 'migrate <app>',
    describe:
      'Move an app to another host: one bundle (folder, volumes, database, roles) streamed into a target-side run that installs, verifies and starts it there',
    load: async () => (await import('./migrate.js')).migrateCommand,
  },
  {
    command: 'cutover <app>',
    describe:
      'Finish a move: stop writes here, send only what changed since the migration (and the database), start and check the app there; serve here again if it fails',
    load: async () => (await import('./cutover.js')).cutoverCommand,
  },
  {
    command: 'remove <app>',
    describe:
      'Remove an app from this host: stop it, make a last backup, drop its database and roles, remove its folder and state. Keeps its Borg repository unless --purge-backups. Needs --yes',
    load: async () => (await import('./remove.js')).removeCommand,
  },
  {
    command: 'health <app>',
    describe: "Run the app's health checks (declared in app.yaml) and print a table",
    load: async () => (await import('./health.js')).healthCommand,
  },
  {
    command: 'facts <app>',
    describe: "Report an app's counts on this host: files and bytes per volume, rows per database table",
    load: async () => (await import('./verify.js')).factsCommand,
  },
  {
    command: 'verify <app>',
    describe:
      'Compare an app on two hosts (health on both, sampled upload checksums, page digests, file and row counts)',
    load: async () => (await import('./verify.js')).verifyCommand,
  },
  {
    command: 'update <app>',
    describe:
      'Update an app safely: backup, bin/update (or bin/install), restart, health; roll back automatically on failure',
    load: async () => (await import('./update.js')).updateCommand,
  },
  {
    command: 'setup <host>',
    describe:
      'Prepare a host over ssh: check Node, borg, GNU tar, acl/attr tools, database tools, ffl; install missing Debian packages (--install) and this deploy; create the apps root and state dir',
    load: async () => (await import('./setup.js')).setupCommand,
  },
  {
    command: 'runs [app] [run]',
    describe:
      'List past runs (migrate, backup, restore, update, ...) and their outcome; `runs show <id>` prints a report again',
    load: async () => (await import('./runs.js')).runsCommand,
  },
  {
    command: 'schema',
    describe: 'Print the JSON Schema of app.yaml (point your editor at it)',
    load: async () => (await import('./schema.js')).schemaCommand,
  },
  {
    command: 'db <action> <app>',
    describe: "Database building blocks: `roles-sql` prints SQL recreating the app's own roles/users and grants",
    load: async () => (await import('./db.js')).dbCommand,
  },
  {
    command: 'receive <app>',
    describe:
      'Target side of a migration: read a migration bundle and install, verify and start the app here (rolled back here on failure)',
    load: async () => (await import('./receive.js')).receiveCommand,
  },
  {
    command: 'stream <action>',
    describe: 'Send a framed stream to another host, receive one, or clean up after a failed one (docs/transports.md)',
    load: async () => (await import('./stream.js')).streamCommand,
  },
];

/** Loads every command (tests, docs): what `deploy --help` used to load on every start. */
export async function loadCommands(): Promise<DeployCommand[]> {
  return Promise.all(COMMAND_SPECS.map((spec) => spec.load()));
}
