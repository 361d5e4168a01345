import { cp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { DEPLOY_VERSION } from '../version.js';
import { join, relative, sep } from 'node:path';
import type { AppFolder, EventBus, Host, Phase } from '@deploykit/core';
import type { CheckResult } from '../health/check-types.js';
import { resolveBaseUrl, runChecks } from '../health/run-checks.js';
import { appStateDir, type HostContext } from '../host-context.js';
import { newArchiveName } from '../phase-env.js';
import { runPhase, type PhaseResult } from '../script-runner.js';

/** One step of an update or its rollback. */
export interface UpdateStep {
  readonly step: string;
  readonly status: 'ok' | 'skipped' | 'failed';
  readonly durationMs: number;
  readonly detail?: string;
}

/**
 * How an update ended: `updated` (health passed), `failed` (stopped before anything changed),
 * `rolled-back` (the new version failed; the previous code and data serve again) or
 * `rollback-failed` (the new version failed and so did the way back: act now).
 */
export interface UpdateResult {
  readonly app: string;
  readonly status: 'updated' | 'failed' | 'rolled-back' | 'rollback-failed';
  /** The safety archive taken before anything changed. */
  readonly archive: string;
  /** Copy of the app folder (minus volumes) taken before anything changed. */
  readonly snapshotDir: string;
  readonly steps: readonly UpdateStep[];
  readonly health: readonly CheckResult[];
  readonly rollbackHealth: readonly CheckResult[];
  readonly reason?: string;
}

/** What updateApp needs from its caller: where it runs and where events go. */
export interface UpdateContext {
  readonly runId: string;
  readonly host: Host;
  readonly hostContext: HostContext;
  readonly bus: EventBus;
}

/** Snapshots kept per app; older ones are pruned after a successful update. */
export const UPDATE_SNAPSHOTS_KEPT = 3;

/** True when `rel` (a path inside the app folder) is one of the volumes or inside one. */
function isInVolume(rel: string, volumes: readonly string[]): boolean {
  return volumes.some((volume) => rel === volume || rel.startsWith(`${volume}/`));
}

/** Copies the app folder to `dest`, leaving the volumes out (they are in the safety archive). */
export async function snapshotAppFolder(app: AppFolder, dest: string): Promise<void> {
  const volumes = app.manifest.volumes.map((volume) => volume.path.replace(/\/+$/, ''));
  await cp(app.dir, dest, {
    recursive: true,
    verbatimSymlinks: true,
    preserveTimestamps: true,
    filter: (source) => {
      const rel = relative(app.dir, source).split(sep).join('/');
      return rel === '' || (!isInVolume(rel, volumes) && rel !== '.state' && !rel.startsWith('.state/'));
    },
  });
}

/** Removes everything in the app folder except the volumes (and the folders leading to them). */
export async function clearAppFolderExceptVolumes(app: AppFolder): Promise<void> {
  const volumes = app.manifest.volumes.map((volume) => volume.path.replace(/\/+$/, ''));
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(join(app.dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (isInVolume(path, volumes) || path === '.state') continue;
      if (entry.isDirectory() && volumes.some((volume) => volume.startsWith(`${path}/`))) await walk(path);
      else await rm(join(app.dir, path), { recursive: true, force: true });
    }
  };
  await walk('');
}

/** Puts a snapshot back: the app folder's code and config as they were, volumes untouched. */
export async function restoreAppFolder(app: AppFolder, snapshot: string): Promise<void> {
  await clearAppFolderExceptVolumes(app);
  await cp(snapshot, app.dir, { recursive: true, force: true, verbatimSymlinks: true, preserveTimestamps: true });
}

async function pruneSnapshots(dir: string, keep: string): Promise<void> {
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  const old = names
    .filter((name) => join(dir, name) !== keep)
    .slice(0, Math.max(0, names.length - UPDATE_SNAPSHOTS_KEPT));
  for (const name of old) await rm(join(dir, name), { recursive: true, force: true });
}

/**
 * Updates an app on this host: safety backup (a fresh Borg archive), a copy of the folder minus
 * volumes, the new files (`from`, overlaid except volumes and secrets) or the app's own bin/update,
 * bin/install when there is no bin/update, a restart and the health checks. When any of that fails
 * after the backup, it rolls back: stop, the previous folder, bin/restore from the safety archive,
 * start, health. Returns what happened; throws only for our own bugs.
 */
export async function updateApp(
  context: UpdateContext,
  app: AppFolder,
  options: { from?: string } = {},
): Promise<UpdateResult> {
  const steps: UpdateStep[] = [];
  const archive = newArchiveName(app);
  const updatesDir = join(appStateDir(context.hostContext, app.name), 'updates');
  const snapshotDir = join(
    updatesDir,
    `${new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '')}-${context.runId}`,
  );
  const base = { app: app.name, archive, snapshotDir };
  const phase = async (name: Phase, extra: { archive?: string } = {}): Promise<PhaseResult> => {
    const result = await runPhase({
      app,
      phase: name,
      host: context.host,
      bus: context.bus,
      context: { runId: context.runId, role: 'local', host: context.hostContext, ...extra },
    });
    steps.push({
      step: `bin/${name}`,
      status: result.status,
      durationMs: result.durationMs,
      ...(result.reason || result.stderrTail
        ? { detail: result.reason ?? result.stderrTail.split('\n').slice(-3).join(' | ') }
        : {}),
    });
    return result;
  };
  // biome-ignore lint/suspicious/noConfusingVoidType: a step's action returns a note or nothing at all
  const step = async (name: string, action: () => Promise<string | void>): Promise<boolean> => {
    const started = Date.now();
    try {
      const detail = await action();
      steps.push({ step: name, status: 'ok', durationMs: Date.now() - started, ...(detail ? { detail } : {}) });
      return true;
    } catch (error) {
      steps.push({
        step: name,
        status: 'failed',
        durationMs: Date.now() - started,
        detail: error instanceof Error ? error.message : String(error),
      });
      return false;
    }
  };
  const check = async (): Promise<CheckResult[]> => {
    const environment = { app, host: context.host, hostContext: context.hostContext };
    const results = await runChecks({ ...environment, baseUrl: resolveBaseUrl(environment) });
    for (const r of results)
      context.bus.emit('check.end', { app: app.name, level: r.status === 'failed' ? 'warn' : 'debug', data: { ...r } });
    return results;
  };
  const failedChecks = (results: readonly CheckResult[]): string =>
    results
      .filter((r) => r.status === 'failed')
      .map((r) => `${r.name}: ${r.reason ?? 'failed'}`)
      .join('; ');

  // 1-2. Nothing changes before both safety copies exist.
  context.bus.emit('update.start', {
    app: app.name,
    message: `updating ${app.name}: safety archive ${archive}, snapshot ${snapshotDir}`,
  });
  if ((await phase('backup', { archive })).status !== 'ok') {
    return {
      ...base,
      status: 'failed',
      steps,
      health: [],
      rollbackHealth: [],
      reason: 'the safety backup failed: nothing was changed',
    };
  }
  const snapped = await step('snapshot app folder', async () => {
    await mkdir(updatesDir, { recursive: true });
    await snapshotAppFolder(app, join(snapshotDir, 'app'));
    await writeFile(
      join(snapshotDir, 'update.json'),
      `${JSON.stringify({ app: app.name, archive, runId: context.runId, startedAt: new Date().toISOString(), from: options.from ?? null, deployVersion: DEPLOY_VERSION }, null, 2)}\n`,
    );
    return snapshotDir;
  });
  if (!snapped)
    return {
      ...base,
      status: 'failed',
      steps,
      health: [],
      rollbackHealth: [],
      reason: 'the folder snapshot failed: nothing was changed',
    };

  // 3-5. The new version, installed and restarted, must pass health.
  let failure: string | undefined;
  let health: CheckResult[] = [];
  if (options.from !== undefined) {
    const from = options.from;
    const keep = [...app.manifest.volumes.map((v) => v.path.replace(/\/+$/, '')), ...app.manifest.secrets];
    const copied = await step(`copy new version from ${from}`, async () => {
      await cp(from, app.dir, {
        recursive: true,
        force: true,
        verbatimSymlinks: true,
        filter: (source) => {
          const rel = relative(from, source).split(sep).join('/');
          return rel === '' || !isInVolume(rel, keep);
        },
      });
    });
    if (!copied) failure = 'copying the new version failed';
  }
  if (failure === undefined) {
    const update = await phase('update');
    const installed = update.status === 'skipped' ? await phase('install') : update;
    if (installed.status === 'failed')
      failure = `bin/${installed.phase} failed${installed.reason ? `: ${installed.reason}` : ''}`;
  }
  if (failure === undefined) {
    await phase('stop');
    const started = await phase('start');
    if (started.status !== 'ok') failure = `bin/start ${started.status}${started.reason ? `: ${started.reason}` : ''}`;
  }
  if (failure === undefined) {
    health = await check();
    if (health.some((r) => r.status === 'failed')) failure = `health failed after the update: ${failedChecks(health)}`;
  }
  if (failure === undefined) {
    await pruneSnapshots(updatesDir, snapshotDir);
    context.bus.emit('update.end', { app: app.name, message: `${app.name} updated; health passed` });
    return { ...base, status: 'updated', steps, health, rollbackHealth: [] };
  }

  // 6. Roll back: the previous code first, so the previous bin/restore and bin/start run.
  context.bus.emit('update.rollback', {
    app: app.name,
    level: 'warn',
    message: `${failure}; rolling back to the state before the update (archive ${archive})`,
  });
  await phase('stop');
  const restoredFolder = await step('restore previous app folder', async () =>
    restoreAppFolder(app, join(snapshotDir, 'app')),
  );
  const restored = await phase('restore', { archive });
  const started = await phase('start');
  const rollbackHealth = await check();
  const back =
    restoredFolder &&
    restored.status === 'ok' &&
    started.status === 'ok' &&
    !rollbackHealth.some((r) => r.status === 'failed');
  context.bus.emit('update.end', {
    app: app.name,
    level: back ? 'warn' : 'error',
    message: back ? `${app.name} rolled back; it serves the previous version` : `${app.name}: the rollback failed too`,
  });
  return {
    ...base,
    status: back ? 'rolled-back' : 'rollback-failed',
    steps,
    health,
    rollbackHealth,
    reason: back
      ? `${failure}. Rolled back: the previous code and the data of archive ${archive} serve again.`
      : `${failure}. The rollback failed too (${[!restoredFolder && 'folder', restored.status !== 'ok' && 'bin/restore', started.status !== 'ok' && 'bin/start', rollbackHealth.some((r) => r.status === 'failed') && `health: ${failedChecks(rollbackHealth)}`].filter(Boolean).join(', ')}).`,
  };
}
