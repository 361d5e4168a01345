import type { AppFolder, Phase } from '@deploykit/core';
import { expandPlaceholders, formatNowPlaceholder } from '@deploykit/manifest';
import { appStateDir, type HostContext } from './host-context.js';

/** What a phase run is for: rendered as DEPLOY_* env for scripts and as metadata on events. */
export interface PhaseContext {
  readonly runId: string;
  readonly role: 'source' | 'target' | 'local';
  readonly host: HostContext;
  /** Borg archive name for backup/restore ("" = the script picks, e.g. latest). */
  readonly archive?: string;
}

/** Expands the app's Borg repository location for this host. */
export function resolveBorgRepo(app: AppFolder, host: HostContext): string {
  const template = app.manifest.borg?.repository ?? '{state_dir}/borg/{app}';
  return expandPlaceholders(template, { app: app.name, state_dir: host.stateDir, app_dir: app.dir });
}

/** A new archive name from the app's pattern ({app}, {now} as formatNowPlaceholder: UTC yyyymmddThhmmssZ). */
export function newArchiveName(app: AppFolder, now: Date = new Date()): string {
  const template = app.manifest.borg?.archive ?? '{app}-{now}';
  return expandPlaceholders(template, { app: app.name, now: formatNowPlaceholder(now) });
}

/** Renders the documented DEPLOY_* environment of a bin/<phase> script (docs/app-folder.md). */
export function buildPhaseEnv(app: AppFolder, phase: Phase, context: PhaseContext): Record<string, string> {
  const { manifest } = app;
  return {
    ...manifest.env,
    DEPLOY_APP: app.name,
    DEPLOY_PHASE: phase,
    DEPLOY_RUN_ID: context.runId,
    DEPLOY_ROLE: context.role,
    DEPLOY_HOST_NAME: context.host.hostName,
    DEPLOY_HOST_ADDRESS: context.host.hostAddress,
    DEPLOY_APP_DIR: app.dir,
    DEPLOY_APPS_ROOT: context.host.appsRoot,
    DEPLOY_STATE_DIR: context.host.stateDir,
    DEPLOY_APP_STATE_DIR: appStateDir(context.host, app.name),
    DEPLOY_BORG_REPO: resolveBorgRepo(app, context.host),
    DEPLOY_BORG_ARCHIVE: context.archive ?? '',
    DEPLOY_DRY_RUN: context.host.dryRun ? '1' : '0',
    DEPLOY_LOG_LEVEL: context.host.logLevel,
    DEPLOY_DB_KIND: manifest.database.kind,
    DEPLOY_DB_NAME: manifest.database.name ?? '',
    DEPLOY_PORT: manifest.port === undefined ? '' : String(manifest.port),
    // Newline-separated, so scripts need not parse app.yaml: mapfile -t vols <<<"$DEPLOY_VOLUMES"
    DEPLOY_VOLUMES: manifest.volumes.map((volume) => volume.path).join('\n'),
    DEPLOY_DB_ROLES: (manifest.database.roles ?? []).join('\n'),
  };
}
