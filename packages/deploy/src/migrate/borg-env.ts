import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppFolder } from '@deploykit/core';
import { quoteWord } from '@deploykit/core';
import { appStateDir, type HostContext } from '../host-context.js';
import { resolveBorgRepo } from '../phase-env.js';

/**
 * Environment for running borg against an app's repository the way its own scripts do: the
 * passphrase by BORG_PASSCOMMAND reading the 0600 secret file (never argv or env value), the cache
 * and security records per app and host, and a carried repository accepted at its new path.
 */
export async function buildBorgEnv(app: AppFolder, host: HostContext): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    BORG_REPO: resolveBorgRepo(app, host),
    BORG_BASE_DIR: join(appStateDir(host, app.name), 'borg'),
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
  };
  const passphraseFile = app.manifest.borg?.passphrase_file;
  if (passphraseFile) {
    const path = join(app.dir, passphraseFile);
    if ((await stat(path).catch(() => undefined))?.size) env.BORG_PASSCOMMAND = `cat -- ${quoteWord(path)}`;
  }
  return env;
}
