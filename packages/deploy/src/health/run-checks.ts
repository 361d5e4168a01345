import type { CheckSpec } from '@deploykit/core';
import { expandPlaceholders } from '@deploykit/manifest';
import type { CheckEnvironment, CheckResult, CheckRunner } from './check-types.js';
import { runDbPageCheck } from './db-page-check.js';
import { runHttpCheck } from './http-check.js';
import { runLoginCheck } from './login-check.js';
import { runLogsCheck } from './logs-check.js';
import { runProcessCheck } from './process-check.js';
import { runStaticCheck } from './static-check.js';
import { runUploadsCheck } from './uploads-check.js';

/** The registry of check kinds; a kind without a runner is reported, not silently passed. */
export const CHECK_RUNNERS: Partial<Record<CheckSpec['type'], CheckRunner>> = {
  http: runHttpCheck as CheckRunner,
  static: runStaticCheck as CheckRunner,
  uploads: runUploadsCheck as CheckRunner,
  'db-page': runDbPageCheck as CheckRunner,
  login: runLoginCheck as CheckRunner,
  logs: runLogsCheck as CheckRunner,
  process: runProcessCheck as CheckRunner,
};

/** Resolves the app's base URL on this host ({host_address}, {port}), or an override. */
export function resolveBaseUrl(environment: Omit<CheckEnvironment, 'baseUrl'>, override?: string): string {
  if (override) return override;
  const template = environment.app.manifest.health?.base_url ?? 'http://{host_address}:{port}';
  return expandPlaceholders(template, {
    host_address: environment.hostContext.hostAddress,
    port: String(environment.app.manifest.port ?? 80),
    app: environment.app.name,
  });
}

/** Runs the app's declared checks (optionally only some, by name) one after another. */
export async function runChecks(environment: CheckEnvironment, only: readonly string[] = []): Promise<CheckResult[]> {
  const checks = (environment.app.manifest.health?.checks ?? []).filter(
    (c) => only.length === 0 || only.includes(c.name),
  );
  const results: CheckResult[] = [];
  for (const check of checks) {
    const runner = CHECK_RUNNERS[check.type];
    if (runner === undefined) {
      results.push({
        name: check.name,
        type: check.type,
        status: 'failed',
        durationMs: 0,
        reason: `check type "${check.type}" is not supported by this deploy version`,
      });
      continue;
    }
    try {
      results.push(await runner(check, environment));
    } catch (error) {
      results.push({
        name: check.name,
        type: check.type,
        status: 'failed',
        durationMs: 0,
        reason: `check crashed: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
  }
  return results;
}
