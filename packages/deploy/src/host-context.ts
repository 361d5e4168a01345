import { hostname } from 'node:os';
import { join } from 'node:path';

/** Where this `deploy` process runs: the identity a host gives its scripts and events. */
export interface HostContext {
  readonly hostName: string;
  readonly hostAddress: string;
  readonly appsRoot: string;
  readonly stateDir: string;
  readonly logLevel: string;
  readonly dryRun: boolean;
}

/** Builds this host's identity from resolved roots and the DEPLOY_HOST_* environment. */
export function resolveHostContext(input: {
  appsRoot: string;
  stateDir: string;
  logLevel?: string | undefined;
  dryRun?: boolean | undefined;
  env?: NodeJS.ProcessEnv;
}): HostContext {
  const env = input.env ?? process.env;
  return {
    hostName: env.DEPLOY_HOST_NAME ?? hostname(),
    hostAddress: env.DEPLOY_HOST_ADDRESS ?? '127.0.0.1',
    appsRoot: input.appsRoot,
    stateDir: input.stateDir,
    logLevel: input.logLevel ?? 'info',
    dryRun: input.dryRun ?? false,
  };
}

/** The per-app state directory on this host (run files, locks). */
export function appStateDir(context: HostContext, app: string): string {
  return join(context.stateDir, 'apps', app);
}
