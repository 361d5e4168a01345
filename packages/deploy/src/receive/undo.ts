import { lstat, readFile, rename, rm } from 'node:fs/promises';
import { ConfigError, newRunId, ScriptError, type AppFolder, type EventBus, type Host } from '@deploykit/core';
import { findProcessesByEnvironment, stopProcesses } from '@deploykit/host';
import { formatIssue, validateAppFolder } from '@deploykit/manifest';
import type { DatabaseEngine } from '../database/engine.js';
import type { SqlClient } from '../database/sql-client.js';
import type { HostContext } from '../host-context.js';
import { restoreFromFile } from '../database/dump-files.js';
import { runPhase } from '../script-runner.js';
import { setMode } from './apply-delta.js';
import { makeXattrsExactly } from './exact-xattrs.js';
import type { UndoAction } from './target-journal.js';

/** What undoing needs: where it runs, the run it undoes, and the database engine (when the app has one). */
export interface UndoEnvironment {
  readonly host: Host;
  readonly hostContext: HostContext;
  readonly bus: EventBus;
  /** The run whose actions are undone (its processes are found by this id). */
  readonly runId: string;
  readonly engine?: DatabaseEngine;
  readonly sql?: SqlClient;
}

/** True when a path exists (a dangling symlink counts). */
export async function pathExists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Loads an app folder for running its scripts; a folder that does not validate cannot be stopped or started by us. */
export async function loadAppFolder(dir: string): Promise<AppFolder> {
  const validated = await validateAppFolder(dir, { allowMissingSecrets: true });
  if (validated.app === undefined) {
    throw new ConfigError(
      'APP_INVALID',
      `the app folder ${dir} does not validate: ${validated.errors
        .slice(0, 3)
        .map((issue) => formatIssue(issue))
        .join('; ')}`,
      {
        hint: 'Fix its app.yaml (deploy validate), then run its bin/start or bin/stop by hand.',
      },
    );
  }
  return validated.app;
}

/** Stops every process of a target-side run (found by its DEPLOY_RUN_ID and DEPLOY_ROLE=target); returns how many ran. */
export async function stopRunProcesses(runId: string): Promise<number> {
  return (await stopProcesses(findProcessesByEnvironment({ DEPLOY_RUN_ID: runId, DEPLOY_ROLE: 'target' }))).length;
}

/** A line for the report: what undoing this action does. */
export function describeUndo(action: UndoAction): string {
  switch (action.kind) {
    case 'remove-path':
      return `remove ${action.path}`;
    case 'rename-path':
      return `put ${action.to} back (from ${action.from})`;
    case 'drop-database':
      return `drop database ${action.name}`;
    case 'rename-database':
      return `put database ${action.to} back (from ${action.from})`;
    case 'restore-database':
      return `put database ${action.name} back (from the dump ${action.file})`;
    case 'drop-new-accounts':
      return `drop the accounts of ${action.roles.join(', ')} this run created`;
    case 'restore-accounts':
      return `restore ${action.file.replace(/^.*\//, '')}: the accounts as they were`;
    case 'stop-app':
      return `stop the app in ${action.dir} and every process of the run`;
    case 'start-app':
      return `start the replaced app in ${action.dir} again`;
    case 'set-mode':
      return `put the mode ${action.mode.toString(8)} and owner ${action.uid}:${action.gid} of ${action.path} back`;
    case 'set-mtime':
      return `put the modification time of ${action.path} back`;
    case 'restore-xattrs':
      return `put the xattrs and ACLs under ${action.dir} back as they were (${action.file.replace(/^.*\//, '')})`;
  }
}

function needDatabase(environment: UndoEnvironment): { engine: DatabaseEngine; sql: SqlClient } {
  if (environment.engine === undefined || environment.sql === undefined)
    throw new ConfigError('UNDO_NO_DATABASE', 'a database undo needs the app database engine');
  return { engine: environment.engine, sql: environment.sql };
}

/**
 * Undoes one action, idempotently: what is already as it should be is left alone. Returns false
 * when there was nothing to do; throws when the undo itself fails.
 */
export async function performUndo(environment: UndoEnvironment, action: UndoAction): Promise<boolean> {
  switch (action.kind) {
    case 'remove-path': {
      const there = await pathExists(action.path);
      if (there) await rm(action.path, { recursive: true, force: true });
      return there;
    }
    case 'rename-path': {
      if (!(await pathExists(action.from)) || (await pathExists(action.to))) return false;
      await rename(action.from, action.to);
      return true;
    }
    case 'drop-database': {
      const { engine, sql } = needDatabase(environment);
      if (!(await engine.databaseExists(sql, action.name))) return false;
      await engine.dropDatabase(sql, action.name);
      return true;
    }
    case 'rename-database': {
      const { engine, sql } = needDatabase(environment);
      if (engine.staging.kind !== 'rename')
        throw new ConfigError('UNDO_ENGINE', `a ${engine.kind} database cannot be renamed back`);
      if (!(await engine.databaseExists(sql, action.from)) || (await engine.databaseExists(sql, action.to)))
        return false;
      await engine.staging.moveDatabase(sql, action.from, action.to);
      return true;
    }
    case 'restore-database': {
      const { engine, sql } = needDatabase(environment);
      if (engine.staging.kind !== 'dump-file')
        throw new ConfigError('UNDO_ENGINE', `a ${engine.kind} database is not kept aside as a dump`);
      if (!(await pathExists(action.file))) return false;
      await engine.dropDatabase(sql, action.name);
      await restoreFromFile(environment.host, engine.staging.restoreArgv(), action.file);
      return true;
    }
    case 'drop-new-accounts': {
      const { engine, sql } = needDatabase(environment);
      const made = (await engine.listAccounts(sql, action.roles)).filter(
        (account) => !action.existing.includes(account),
      );
      await engine.dropAccounts(sql, made);
      return made.length > 0;
    }
    case 'restore-accounts': {
      const { sql } = needDatabase(environment);
      const snapshot = await readFile(action.file, 'utf8').catch(() => undefined);
      if (snapshot === undefined || snapshot.trim() === '') return false;
      await sql.query(snapshot);
      return true;
    }
    case 'stop-app': {
      let stopped = false;
      if (await pathExists(action.dir)) {
        const app = await loadAppFolder(action.dir).catch(() => undefined);
        if (app !== undefined) {
          const result = await runPhase({
            app,
            phase: 'stop',
            host: environment.host,
            bus: environment.bus,
            context: { runId: environment.runId, role: 'target', host: environment.hostContext },
          });
          stopped = result.status === 'ok';
        }
      }
      // Whatever bin/stop missed (or a folder that no longer loads): every process of the run.
      return (await stopRunProcesses(environment.runId)) > 0 || stopped;
    }
    case 'start-app': {
      if (!(await pathExists(action.dir))) return false;
      const app = await loadAppFolder(action.dir);
      // As `deploy start` would: its own run id, so the restarted app is not a process of the failed run.
      const result = await runPhase({
        app,
        phase: 'start',
        host: environment.host,
        bus: environment.bus,
        context: { runId: newRunId(), role: 'local', host: environment.hostContext },
      });
      if (result.status === 'failed')
        throw new ScriptError(
          'UNDO_START_FAILED',
          `the replaced app in ${action.dir} did not start again: ${result.reason ?? ''}`,
          { hint: `Start it by hand: deploy start ${app.name}` },
        );
      return result.status === 'ok';
    }
    case 'set-mode': {
      if (!(await pathExists(action.path))) return false;
      await setMode(action.path, action, process.getuid?.() === 0);
      return true;
    }
    case 'restore-xattrs': {
      if (!(await pathExists(action.dir)) || !(await pathExists(action.file))) return false;
      await makeXattrsExactly(environment.host, action.dir, await readFile(action.file, 'utf8'));
      return true;
    }
    case 'set-mtime': {
      // Only a directory that is still one (not a link put there since); touch -h never follows a link either.
      const stats = await lstat(action.path).catch(() => undefined);
      if (stats === undefined || !stats.isDirectory()) return false;
      // GNU touch takes @seconds.nanoseconds exactly; Node's lutimes takes a double and loses ~100 ns.
      const ns = BigInt(action.ns);
      const stamp = `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
      const result = await environment.host.run({
        argv: ['touch', '-h', '-m', '-d', stamp, '--', action.path],
        label: 'undo: directory mtime',
      });
      if (result.exitCode !== 0)
        throw new ScriptError(
          'UNDO_MTIME_FAILED',
          `could not put the modification time of ${action.path} back: ${result.stderr.trim()}`,
        );
      return true;
    }
  }
}
