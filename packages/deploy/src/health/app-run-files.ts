import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppFolder } from '@deploykit/core';
import { appStateDir, type HostContext } from '../host-context.js';

/**
 * Where an app's run files live. The sample app's bin/start writes them to $DEPLOY_APP_STATE_DIR/run
 * (outside the folder, so a copied folder carries no stale pids), falling back to <app>/.state/run.
 */
export function listRunDirs(app: AppFolder, host: HostContext): string[] {
  return [join(appStateDir(host, app.name), 'run'), join(app.dir, '.state', 'run')];
}

/** The first of `name` found in the app's run dirs, or undefined. */
export async function findRunFile(app: AppFolder, host: HostContext, name: string): Promise<string | undefined> {
  for (const dir of listRunDirs(app, host)) {
    const path = join(dir, name);
    if (
      await stat(path).then(
        (info) => info.isFile(),
        () => false,
      )
    )
      return path;
  }
  return undefined;
}
