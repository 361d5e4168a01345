import { cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { DEPLOY_VERSION } from '../version.js';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import {
  ConflictError,
  ConfigError,
  newRunId,
  ScriptError,
  type AppFolder,
  type EventBus,
  type Host,
} from '@deploykit/core';
import { findProcessesByEnvironment } from '@deploykit/host';
import { discoverApps } from '@deploykit/manifest';
import { engineOfApp } from '../database/engines.js';
import { createSqlClient } from '../database/sql-client.js';
import { appStateDir, type HostContext } from '../host-context.js';
import { acquireAppLock } from '../migrate/app-lock.js';
import { buildBorgEnv } from '../migrate/borg-env.js';
import { newArchiveName, resolveBorgRepo } from '../phase-env.js';
import { runPhase } from '../script-runner.js';

/** What `deploy remove` asks for. */
export interface RemoveOptions {
  readonly app: AppFolder;
  readonly host: Host;
  readonly hostContext: HostContext;
  readonly bus: EventBus;
  readonly runId: string;
  /** Make a last archive first (after stopping, so it holds the last write). */
  readonly backup: boolean;
  /** Delete the Borg repository too (default: it is kept, with what restoring needs). */
  readonly purgeBackups: boolean;
}

/** The app's Borg repository and what remove does with it. */
export interface RemoveRepository {
  readonly path: string;
  readonly exists: boolean;
  /** Archives in it now (undefined when borg cannot list it: `archivesError` says why). */
  readonly archives?: number;
  readonly archivesError?: string;
  readonly action: 'keep' | 'purge';
}

/** Everything `deploy remove` would remove or keep, measured before anything changes. */
export interface RemovePlan {
  readonly app: string;
  readonly host: string;
  readonly folder: { readonly path: string; readonly bytes: number };
  /** The archive the last backup gets (absent with --no-backup). */
  readonly backup?: { readonly archive: string };
  readonly database?: {
    readonly kind: string;
    readonly name: string;
    readonly exists: boolean;
    readonly bytes: number;
    readonly action: 'drop' | 'keep';
    readonly reason?: string;
  };
  readonly roles: readonly { readonly name: string; readonly action: 'drop' | 'keep'; readonly reason?: string }[];
  readonly repository: RemoveRepository;
  /** Removed with the app: its state (run records, incoming runs, Borg cache) and leftovers of its migrations. */
  readonly state: readonly string[];
  /** Where the removal record goes (and, when backups are kept, the folder without its volumes: what a restore needs besides the archive). */
  readonly record: string;
  readonly keepsFolderCopy: boolean;
}

/** What a finished remove did. */
export interface RemoveReport {
  readonly ok: true;
  readonly app: string;
  readonly runId: string;
  readonly plan: RemovePlan;
  readonly stopped: 'stopped' | 'was not running';
  readonly backup?: { readonly archive: string };
  readonly databaseDropped: boolean;
  readonly rolesDropped: readonly string[];
  readonly repository: 'kept' | 'purged' | 'absent';
  readonly removed: readonly string[];
  readonly record: string;
  readonly durationMs: number;
}

/** A run id as newRunId makes them (optionally with a session suffix): leftovers are matched by it. */
const RUN_ID = String.raw`\d{8}T\d{6}Z-[0-9a-f]{6}(?:-\d+)?`;

/** Where remove records of an app live: `<state>/removed/<app>/<run id>/`. */
export function removedDir(stateDir: string, app: string): string {
  return join(stateDir, 'removed', app);
}

/** True when `inner` is `outer` or inside it. */
function within(outer: string, inner: string): boolean {
  const rel = relative(resolve(outer), resolve(inner));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** A repository given as a local path (not ssh://, not user@host:path). */
function isLocalRepo(repo: string): boolean {
  return isAbsolute(repo) && !repo.includes('://');
}

async function diskBytes(host: Host, path: string): Promise<number> {
  const du = await host.run({ argv: ['du', '-s', '-B1', '--', path] });
  return Number(du.stdout.split('\t')[0]) || 0;
}

/**
 * Measures what removing an app would do, changing nothing: the folder and its size, the database
 * and roles (kept, with the reason, when another app declares them or they are used outside the
 * app's database), the repository and its archive count, the state that goes with the app. Refuses
 * (ConfigError) what it must not do: keeping backups whose repository lives inside what is removed.
 */
export async function planRemove(options: RemoveOptions): Promise<RemovePlan> {
  const { app, host, hostContext } = options;
  const { manifest } = app;
  const others = (await discoverApps(hostContext.appsRoot, { allowMissingSecrets: true })).apps.filter(
    (other) => other.name !== app.name,
  );
  const borgEnv = await buildBorgEnv(app, hostContext);
  const repoPath = resolveBorgRepo(app, hostContext);
  const stateOfApp = appStateDir(hostContext, app.name);

  // The repository: kept by default; purged only when no other app here uses the same one.
  const local = isLocalRepo(repoPath);
  const exists = local ? (await stat(join(repoPath, 'config')).catch(() => undefined)) !== undefined : true;
  let archives: number | undefined;
  let archivesError: string | undefined;
  if (exists) {
    const listed = await host.run({ argv: ['borg', 'list', '--short', '--lock-wait', '30'], env: borgEnv });
    if (listed.exitCode === 0) archives = listed.stdout.split('\n').filter(Boolean).length;
    else archivesError = listed.stderr.trim().split('\n').slice(-1)[0] ?? `borg exited ${listed.exitCode}`;
  }
  const sharedRepo = others.find((other) => {
    const theirs = resolveBorgRepo(other, hostContext);
    return (
      theirs === repoPath || (isLocalRepo(theirs) && local && (within(theirs, repoPath) || within(repoPath, theirs)))
    );
  });
  if (options.purgeBackups && sharedRepo) {
    throw new ConfigError(
      'REMOVE_REPO_SHARED',
      `the Borg repository ${repoPath} is also the repository of app ${sharedRepo.name}: --purge-backups would delete its backups too`,
      {
        hint: `Remove without --purge-backups (the repository stays), and delete ${app.name}'s archives there with borg delete if you must.`,
      },
    );
  }
  if (!options.purgeBackups && local && (within(app.dir, repoPath) || within(stateOfApp, repoPath))) {
    throw new ConfigError(
      'REMOVE_REPO_INSIDE',
      `the Borg repository ${repoPath} lives inside ${within(app.dir, repoPath) ? `the app folder ${app.dir}` : `the app's state ${stateOfApp}`}, which remove deletes: its backups cannot be kept there`,
      {
        hint: `Move the repository out first (borg.repository in app.yaml, then move the folder), or pass --purge-backups to delete the backups with the app.`,
      },
    );
  }

  // The database and roles: not when another app here declares them, nor (roles) when used elsewhere.
  let database: RemovePlan['database'];
  const roles: { name: string; action: 'drop' | 'keep'; reason?: string }[] = [];
  const engine = engineOfApp(app);
  const dbName = manifest.database.name;
  if (engine !== undefined) {
    const sql = createSqlClient(host, engine.clientArgv);
    if (dbName !== undefined) {
      const sharer = others.find(
        (other) => other.manifest.database.kind !== 'none' && other.manifest.database.name === dbName,
      );
      const there = await engine.databaseExists(sql, dbName);
      database = {
        kind: engine.kind,
        name: dbName,
        exists: there,
        bytes: there ? await engine.databaseBytes(sql, dbName) : 0,
        action: sharer || !there ? 'keep' : 'drop',
        ...(sharer
          ? { reason: `app ${sharer.name} declares the same database` }
          : !there
            ? { reason: 'it does not exist' }
            : {}),
      };
    }
    const declared = manifest.database.roles ?? [];
    const accounts = await engine.listAccounts(sql, declared);
    const usage = await engine.accountsUsedElsewhere(sql, accounts, database?.action === 'drop' ? dbName : undefined);
    for (const account of accounts) {
      const user =
        engine.kind === 'postgres'
          ? account
          : (/^'((?:[^']|'')*)'@/.exec(account)?.[1]?.replace(/''/g, "'") ?? account);
      const sharer = others.find(
        (other) => other.manifest.database.kind !== 'none' && (other.manifest.database.roles ?? []).includes(user),
      );
      const reasons = [...(sharer ? [`app ${sharer.name} declares it too`] : []), ...(usage[account] ?? [])];
      roles.push({
        name: account,
        action: reasons.length > 0 ? 'keep' : 'drop',
        ...(reasons.length > 0 ? { reason: reasons.join('; ') } : {}),
      });
    }
  }

  // Its state, and what its migrations left in the apps root (kept parts of a failed run in, set-aside copies).
  const leftovers = new RegExp(
    `^\\.(?:migrate-${escapeRegExp(app.name)}-${RUN_ID}|${escapeRegExp(app.name)}\\.aside-${RUN_ID})$`,
  );
  const state = [
    ...((await stat(stateOfApp).catch(() => undefined)) ? [stateOfApp] : []),
    ...(await readdir(hostContext.appsRoot).catch(() => [] as string[]))
      .filter((name) => leftovers.test(name))
      .map((name) => join(hostContext.appsRoot, name)),
  ];
  return {
    app: app.name,
    host: hostContext.hostName,
    folder: { path: app.dir, bytes: await diskBytes(host, app.dir) },
    ...(options.backup ? { backup: { archive: newArchiveName(app) } } : {}),
    ...(database ? { database } : {}),
    roles,
    repository: {
      path: repoPath,
      exists,
      ...(archives !== undefined ? { archives } : {}),
      ...(archivesError ? { archivesError } : {}),
      action: options.purgeBackups ? 'purge' : 'keep',
    },
    state,
    record: join(removedDir(hostContext.stateDir, app.name), options.runId),
    keepsFolderCopy: !options.purgeBackups,
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Removes an app from this host, under its lock (a migration cannot run meanwhile): stop (and check
 * nothing of it still runs), a last backup, drop the database and roles the plan drops, purge the
 * repository when asked, keep a record (and, when backups are kept, the folder without its
 * volumes), remove the folder and its state. Until the backup is in the repository nothing is
 * removed, and the app is started again when it ran before.
 */
export async function removeApp(options: RemoveOptions): Promise<RemoveReport> {
  const started = Date.now();
  const { app, host, hostContext, bus } = options;
  await using _lock = await acquireAppLock({
    stateDir: hostContext.stateDir,
    app: app.name,
    runId: options.runId,
    command: `deploy remove ${app.name}`,
  });
  const plan = await planRemove(options);
  const done: Record<string, unknown> = {};
  const writeRecord = async (status: string): Promise<void> => {
    await mkdir(plan.record, { recursive: true, mode: 0o700 });
    await writeFile(
      join(plan.record, 'removal.json'),
      `${JSON.stringify({ status, time: new Date().toISOString(), runId: options.runId, deployVersion: DEPLOY_VERSION, plan, done }, null, 2)}\n`,
      { mode: 0o600 },
    );
  };
  await writeRecord('started');
  const context = { runId: options.runId, role: 'local' as const, host: hostContext };

  // 1. Stop, and make sure nothing of the app still runs (its scripts' processes carry DEPLOY_APP_DIR).
  bus.emit('remove.step', { app: app.name, message: `stopping ${app.name}` });
  const stop = await runPhase({ app, phase: 'stop', host, bus, context });
  if (stop.status === 'failed')
    throw new ScriptError('REMOVE_STOP_FAILED', `${app.name}:stop failed, nothing was removed: ${stop.reason ?? ''}`, {
      hint: `Stop it by hand, then run deploy remove ${app.name} again.`,
    });
  const wasRunning = stop.status === 'ok';
  const alive = findProcessesByEnvironment({ DEPLOY_APP_DIR: app.dir });
  if (alive.length > 0) {
    throw new ConflictError(
      'REMOVE_STILL_RUNNING',
      `${app.name} still runs after bin/stop (pid ${alive.join(', ')}); nothing was removed`,
      {
        hint: `Stop those processes (kill ${alive.join(' ')}), fix bin/stop, then run deploy remove ${app.name} again.`,
      },
    );
  }
  done.stopped = wasRunning ? 'stopped' : 'was not running';
  const restart = async (): Promise<string> => {
    if (!wasRunning) return '';
    const result = await runPhase({ app, phase: 'start', host, bus, context: { ...context, runId: newRunId() } });
    return result.status === 'failed'
      ? `; starting it again failed too (${result.reason ?? ''})`
      : '; it was started again';
  };

  // 2. The last backup, after the stop: it holds the last write. Nothing is removed without it.
  if (plan.backup) {
    bus.emit('remove.step', { app: app.name, message: `last backup: archive ${plan.backup.archive}` });
    const backup = await runPhase({
      app,
      phase: 'backup',
      host,
      bus,
      context: { ...context, archive: plan.backup.archive },
    });
    const listed =
      backup.status === 'ok'
        ? await host.run({
            argv: ['borg', 'list', '--short', '--lock-wait', '30', `::${plan.backup.archive}`],
            env: await buildBorgEnv(app, hostContext),
          })
        : undefined;
    if (backup.status !== 'ok' || listed?.exitCode !== 0) {
      const why =
        backup.status !== 'ok'
          ? `bin/backup ${backup.status === 'skipped' ? 'skipped (exit 75)' : `failed: ${backup.reason ?? ''}`}`
          : `the archive ${plan.backup.archive} is not in ${plan.repository.path}`;
      throw new ScriptError(
        'REMOVE_BACKUP_FAILED',
        `the last backup of ${app.name} did not happen (${why}); nothing was removed${await restart()}`,
        {
          hint: `Fix the backup (deploy backup ${app.name}), or remove without one: deploy remove ${app.name} --no-backup --yes.`,
          details: { stderrTail: backup.stderrTail },
        },
      );
    }
    done.backup = plan.backup.archive;
  }
  await writeRecord('backed up');

  // 3. Database and roles (the database first: its objects are what the roles own).
  const engine = engineOfApp(app);
  let databaseDropped = false;
  const rolesDropped: string[] = [];
  if (engine !== undefined) {
    const sql = createSqlClient(host, engine.clientArgv);
    if (plan.database?.action === 'drop') {
      bus.emit('remove.step', { app: app.name, message: `dropping database ${plan.database.name}` });
      await engine.dropDatabase(sql, plan.database.name);
      databaseDropped = true;
      done.databaseDropped = plan.database.name;
    }
    const drop = plan.roles.filter((role) => role.action === 'drop').map((role) => role.name);
    if (drop.length > 0) {
      bus.emit('remove.step', {
        app: app.name,
        message: `dropping ${engine.kind === 'postgres' ? 'roles' : 'users'} ${drop.join(', ')}`,
      });
      await engine.dropAccounts(sql, drop);
      rolesDropped.push(...drop);
      done.rolesDropped = drop;
    }
    for (const role of plan.roles.filter((r) => r.action === 'keep'))
      bus.emit('remove.kept', { app: app.name, level: 'warn', message: `kept ${role.name}: ${role.reason}` });
  }
  await writeRecord('database removed');

  // 4. The repository: purged only when asked (borg deletes only a Borg repository), else kept with what a restore needs.
  let repository: RemoveReport['repository'] = plan.repository.exists ? 'kept' : 'absent';
  if (plan.repository.action === 'purge' && plan.repository.exists) {
    bus.emit('remove.step', { app: app.name, message: `deleting the Borg repository ${plan.repository.path}` });
    const deleted = await host.run({
      argv: ['borg', 'delete', '--lock-wait', '30'],
      env: { ...(await buildBorgEnv(app, hostContext)), BORG_DELETE_I_KNOW_WHAT_I_AM_DOING: 'YES' },
    });
    if (deleted.exitCode !== 0) {
      throw new ScriptError(
        'REMOVE_REPO_DELETE_FAILED',
        `borg could not delete the repository ${plan.repository.path}: ${deleted.stderr.trim().split('\n').slice(-2).join(' ')}`,
        {
          hint: `The app is stopped${databaseDropped ? ' and its database dropped' : ''}; fix the cause and run deploy remove ${app.name} --no-backup --purge-backups --yes again (record: ${plan.record}).`,
        },
      );
    }
    repository = 'purged';
    done.repository = 'purged';
  } else if (plan.keepsFolderCopy) {
    // The archive holds the volumes and the database; the code, config and secrets (the repository's passphrase among them) are here.
    const volumes = app.manifest.volumes.map((volume) => join(app.dir, volume.path.replace(/\/$/, '')));
    await cp(app.dir, join(plan.record, 'folder'), {
      recursive: true,
      verbatimSymlinks: true,
      preserveTimestamps: true,
      filter: (source) => !volumes.some((volume) => within(volume, source)),
    });
    done.folderCopy = join(plan.record, 'folder');
  }
  await writeRecord('repository done');

  // 5. The folder (out of sight at once by a rename, then deleted) and the app's state.
  bus.emit('remove.step', { app: app.name, message: `removing ${app.dir} and the state of ${app.name}` });
  const removing = join(dirname(app.dir), `.removing-${app.name}-${options.runId}`);
  await rename(app.dir, removing);
  await rm(removing, { recursive: true, force: true });
  for (const path of plan.state) await rm(path, { recursive: true, force: true });
  const removed = [app.dir, ...plan.state];
  done.removed = removed;
  await writeRecord('finished');
  return {
    ok: true,
    app: app.name,
    runId: options.runId,
    plan,
    stopped: wasRunning ? 'stopped' : 'was not running',
    ...(plan.backup ? { backup: plan.backup } : {}),
    databaseDropped,
    rolesDropped,
    repository,
    removed,
    record: plan.record,
    durationMs: Date.now() - started,
  };
}

/** The newest finished removal of an app on this host, for "it is not here" messages. */
export async function readLastRemoval(
  stateDir: string,
  app: string,
): Promise<{ runId: string; time: string; repository: string; repositoryAction: string; record: string } | undefined> {
  const dir = removedDir(stateDir, app);
  for (const runId of (await readdir(dir).catch(() => [] as string[])).sort().reverse()) {
    try {
      const record = JSON.parse(await readFile(join(dir, runId, 'removal.json'), 'utf8')) as {
        status: string;
        time: string;
        plan: RemovePlan;
      };
      if (record.status === 'finished')
        return {
          runId,
          time: record.time,
          repository: record.plan.repository.path,
          repositoryAction: record.plan.repository.action,
          record: join(dir, runId),
        };
    } catch {
      // unreadable: look at the next one
    }
  }
  return undefined;
}
