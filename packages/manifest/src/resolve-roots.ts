import { resolve } from 'node:path';
import type { GlobalConfig } from './global-config.js';

/** Where apps live when nothing says otherwise. */
export const DEFAULT_APPS_ROOT = '/srv/apps';
/** Where deploy keeps its state when nothing says otherwise. */
export const DEFAULT_STATE_DIR = '/var/lib/deploy';

/** Inputs of the root resolvers: command-line flag, environment and global config, each optional. */
export interface RootSources {
  readonly flag?: string | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly config?: Pick<GlobalConfig, 'apps_root' | 'state_dir'>;
}

function pick(...candidates: (string | undefined)[]): string | undefined {
  return candidates.find((candidate) => candidate !== undefined && candidate !== '');
}

/** Picks the apps root: flag > env DEPLOY_APPS_ROOT > config apps_root > /srv/apps; returns an absolute path. */
export function resolveAppsRoot(sources: RootSources = {}): string {
  const env = sources.env ?? process.env;
  return resolve(pick(sources.flag, env.DEPLOY_APPS_ROOT, sources.config?.apps_root) ?? DEFAULT_APPS_ROOT);
}

/** Picks the state folder: flag > env DEPLOY_STATE_DIR > config state_dir > /var/lib/deploy; returns an absolute path. */
export function resolveStateDir(sources: RootSources = {}): string {
  const env = sources.env ?? process.env;
  return resolve(pick(sources.flag, env.DEPLOY_STATE_DIR, sources.config?.state_dir) ?? DEFAULT_STATE_DIR);
}
