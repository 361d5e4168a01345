#!/usr/bin/env node
// deploykit-lab: start, stop and inspect the lab from a shell (`npm run lab -- up|down|status`).
// The only place in the package that prints and exits; the lab API returns data or throws.
import { resolve } from 'node:path';
import { type DeployError, EXIT_CODES, UsageError, quoteArgv, quoteWord, toDeployError } from '@deploykit/core';
import { buildLabDownCommand, defaultLabDir } from './lab-paths.js';
import { startLab } from './lab-start.js';
import { stopLab } from './lab-stop.js';
import { labStatus } from './lab-status.js';
import type { LabHost } from './lab-types.js';

const HELP = `Usage: npm run lab -- <command> [options]

Commands:
  up       start a lab: per host an sshd on its own 127.x.y.z address, a root folder,
           a PostgreSQL 15 cluster (and MariaDB with --mariadb)
  down     stop every process of the lab and remove the lab dir
  status   show which lab processes are alive

Options:
  --hosts N       number of hosts for up (default 2; names a, b, c, ...)
  --mariadb       also start a MariaDB server per host (up)
  --no-postgres   start no PostgreSQL clusters (up)
  --ffl-time-scale X
                  the ffl stand-in's delays times X on every host (up; default the
                  real timings, 0 = none; docs/ffl-standin.md)
  --release FILE  install this deploykit release (npm run release) into each host's
                  own prefix and put it on the host's PATH instead of the repo (up)
  --dir DIR       lab dir (default <repo>/.lab)
  --json          status as JSON
  -h, --help      this help

See docs/lab.md.`;

interface CliOptions {
  command: string | undefined;
  hosts: number;
  mariadb: boolean;
  postgres: boolean;
  fflTimeScale: number | undefined;
  release: string | undefined;
  dir: string;
  json: boolean;
  help: boolean;
}

function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = {
    command: undefined,
    hosts: 2,
    mariadb: false,
    postgres: true,
    fflTimeScale: undefined,
    release: undefined,
    dir: defaultLabDir(),
    json: false,
    help: false,
  };
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index] ?? '';
    const value = (): string => {
      const next = argv[index + 1];
      if (next === undefined)
        throw new UsageError('LAB_CLI_VALUE', `${arg} needs a value`, { hint: 'See `npm run lab -- --help`.' });
      index += 1;
      return next;
    };
    if (arg === '-h' || arg === '--help') options.help = true;
    else if (arg === '--mariadb') options.mariadb = true;
    else if (arg === '--no-postgres') options.postgres = false;
    else if (arg === '--json') options.json = true;
    else if (arg === '--hosts') options.hosts = Number(value());
    else if (arg.startsWith('--hosts=')) options.hosts = Number(arg.slice('--hosts='.length));
    else if (arg === '--ffl-time-scale') options.fflTimeScale = Number(value());
    else if (arg === '--release') options.release = resolve(value());
    else if (arg.startsWith('--release=')) options.release = resolve(arg.slice('--release='.length));
    else if (arg === '--dir') options.dir = resolve(value());
    else if (arg.startsWith('--dir=')) options.dir = resolve(arg.slice('--dir='.length));
    else if (!arg.startsWith('-') && options.command === undefined) options.command = arg;
    else throw new UsageError('LAB_CLI_ARGUMENT', `unknown argument ${arg}`, { hint: 'See `npm run lab -- --help`.' });
  }
  return options;
}

function describeHost(host: LabHost): string {
  const parts = [`  ${host.name}  ${host.address}`, `ssh :${host.sshPort}`];
  if (host.pgSocketDir !== '') parts.push(`postgres :${host.pgPort} (PGHOST=${host.pgSocketDir})`);
  if (host.mysqlSocket !== undefined) parts.push(`mariadb :${host.mysqlPort} (socket ${host.mysqlSocket})`);
  parts.push(`root ${host.root}`);
  if (host.deployPrefix !== undefined) parts.push(`deploy from ${host.deployPrefix}/bin`);
  return parts.join('  ');
}

async function runUp(options: CliOptions): Promise<void> {
  const started = Date.now();
  const lab = await startLab({
    hosts: options.hosts,
    dir: options.dir,
    mariadb: options.mariadb,
    postgres: options.postgres,
    ...(options.fflTimeScale === undefined ? {} : { fflTimeScale: options.fflTimeScale }),
    ...(options.release === undefined ? {} : { release: options.release }),
  });
  const first = lab.hosts[0]?.name ?? 'a';
  console.log(`lab ${lab.id} up in ${((Date.now() - started) / 1000).toFixed(1)} s, dir ${lab.dir}`);
  for (const host of lab.hosts) console.log(describeHost(host));
  console.log(`ssh_config: ${lab.sshConfigPath}`);
  console.log(`  try: ${quoteArgv(['ssh', '-F', lab.sshConfigPath, first, '--', 'env | grep ^DEPLOY_'])}`);
  console.log('for deploy on this side, paste:');
  console.log(`export DEPLOY_CONFIG=${quoteWord(lab.deployConfigPath)}`);
  console.log(`stop it with: ${buildLabDownCommand(lab.dir)}`);
}

async function runDown(options: CliOptions): Promise<void> {
  const status = await labStatus(options.dir);
  if (status.state === 'absent') {
    console.log(`no lab in ${options.dir}`);
    return;
  }
  const started = Date.now();
  await stopLab(options.dir);
  console.log(`lab ${status.record.id} down in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

async function runStatus(options: CliOptions): Promise<number> {
  const status = await labStatus(options.dir);
  if (options.json) {
    console.log(JSON.stringify(status, null, 2));
  } else if (status.state === 'absent') {
    console.log(`no lab in ${options.dir}`);
  } else {
    console.log(`lab ${status.record.id}: ${status.state} (dir ${status.dir}, started ${status.record.createdAt})`);
    for (const host of status.record.hosts) {
      const processes = status.processes.filter((entry) => entry.host === host.name);
      console.log(
        `  ${host.name}  ${host.address}  ${processes.map((entry) => `${entry.role} ${entry.pid} ${entry.alive ? 'alive' : 'DEAD'}`).join(', ')}`,
      );
    }
    console.log(
      `  other processes of the lab (sessions, workers, apps): ${status.otherPids.length === 0 ? 'none' : status.otherPids.join(' ')}`,
    );
  }
  return status.state === 'running' ? 0 : 1;
}

async function main(argv: readonly string[]): Promise<number> {
  const options = parseArgs(argv);
  if (options.help || options.command === undefined) {
    console.log(HELP);
    return options.help ? 0 : EXIT_CODES.usage;
  }
  switch (options.command) {
    case 'up':
      await runUp(options);
      return 0;
    case 'down':
      await runDown(options);
      return 0;
    case 'status':
      return runStatus(options);
    default:
      throw new UsageError('LAB_CLI_COMMAND', `unknown command ${options.command}`, {
        hint: 'Use up, down or status; see `npm run lab -- --help`.',
      });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const failure: DeployError = toDeployError(error);
    console.error(`lab: ${failure.message}`);
    if (failure.hint !== undefined) console.error(`hint: ${failure.hint}`);
    if (process.argv.includes('--verbose') && failure.stack !== undefined) console.error(failure.stack);
    process.exitCode = EXIT_CODES[failure.kind];
  },
);
