import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConflictError } from '@deploykit/core';
import type { HostContext } from '../host-context.js';
import { incomingMarkerPath } from './host-facts.js';

/** The hidden folder a migration builds the app in on the target; discovery ignores dot-folders. */
export function migrationStagingRoot(context: HostContext, app: string, runId: string): string {
  return join(context.appsRoot, `.migrate-${app}-${runId}`);
}

/** The app folder inside the staging root (its final name, so relative layout is final too). */
export function migrationStagingApp(context: HostContext, app: string, runId: string): string {
  return join(migrationStagingRoot(context, app, runId), app);
}

/**
 * Makes a fresh staging folder for a migration and records the run as unfinished. Leftovers of
 * earlier unfinished runs of the same app are removed first: the caller holds the app's lock.
 */
export async function prepareTargetFolder(context: HostContext, app: string, runId: string, options: { replace: boolean }): Promise<string> {
  const finalDir = join(context.appsRoot, app);
  const existing = await stat(finalDir).catch(() => undefined);
  const marker = incomingMarkerPath(context, app);
  const unfinished = await stat(marker).catch(() => undefined);
  if (existing && !options.replace && !unfinished) {
    throw new ConflictError('TARGET_APP_EXISTS', `${finalDir} already exists on ${context.hostName}`, {
      hint: 'Migrate to a host without this app, or pass --replace to replace it (its folder is swapped out only after everything arrived and was checked).',
    });
  }
  await removeMigrationLeftovers(context, app);
  await mkdir(context.appsRoot, { recursive: true });
  const staging = migrationStagingApp(context, app, runId);
  await mkdir(staging, { recursive: true, mode: 0o700 });
  await mkdir(join(context.stateDir, 'apps', app), { recursive: true });
  await writeFile(marker, `${JSON.stringify({ runId, since: new Date().toISOString() })}\n`);
  return staging;
}

/** Removes staging roots of earlier migrations of an app (any run id). */
export async function removeMigrationLeftovers(context: HostContext, app: string, runId?: string): Promise<string[]> {
  const removed: string[] = [];
  const names = await readdir(context.appsRoot).catch(() => [] as string[]);
  for (const name of names) {
    const ours = runId === undefined ? name.startsWith(`.migrate-${app}-`) : name === `.migrate-${app}-${runId}` || name === `.${app}.old-${runId}`;
    if (ours || (runId === undefined && name.startsWith(`.${app}.old-`))) {
      await rm(join(context.appsRoot, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

/**
 * Swaps the staged app folder into place: the old folder (if any) is renamed aside, the staged one
 * renamed in, then the old one removed; on a failed rename the old folder is put back.
 */
export async function commitTargetFolder(context: HostContext, app: string, runId: string): Promise<void> {
  const staging = migrationStagingApp(context, app, runId);
  const finalDir = join(context.appsRoot, app);
  const aside = join(context.appsRoot, `.${app}.old-${runId}`);
  const hadOld = (await stat(finalDir).catch(() => undefined)) !== undefined;
  if (hadOld) await rename(finalDir, aside);
  try {
    await rename(staging, finalDir);
  } catch (error) {
    if (hadOld) await rename(aside, finalDir);
    throw error;
  }
  await rm(migrationStagingRoot(context, app, runId), { recursive: true, force: true });
  if (hadOld) await rm(aside, { recursive: true, force: true });
}

/** Marks the migration into this host finished (after verification). */
export async function finishIncoming(context: HostContext, app: string): Promise<void> {
  await rm(incomingMarkerPath(context, app), { force: true });
}

/** Removes everything an unfinished migration left in the target folder area. */
export async function abortTargetFolder(context: HostContext, app: string, runId: string, options: { removeApp?: boolean } = {}): Promise<string[]> {
  const removed = await removeMigrationLeftovers(context, app, runId);
  if (options.removeApp) {
    // Only a folder this unfinished migration committed: the incoming marker must name our run.
    const marker = await readFile(incomingMarkerPath(context, app), 'utf8').then((t) => JSON.parse(t) as { runId: string }, () => undefined);
    if (marker?.runId === runId) {
      await rm(join(context.appsRoot, app), { recursive: true, force: true });
      removed.push(app);
    }
  }
  await rm(incomingMarkerPath(context, app), { force: true });
  return removed;
}
