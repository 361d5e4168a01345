import type { Host } from '@deploykit/core';
import { DeployClient, LocalHost } from '@deploykit/host';
import { resolveNamedHost } from '../cli/delegate.js';
import { localDeployCommand } from '../install-paths.js';
import type { AppFacts } from './app-facts.js';
import type { CheckResult, SampledFile } from './check-types.js';

/** One `deploy health --json` output, as verify reads it. */
export interface HealthReport {
  readonly app: string;
  readonly host: string;
  readonly baseUrl: string;
  readonly ok: boolean;
  readonly checks: readonly CheckResult[];
}

/** One thing verify compared: match, mismatch, a failed health check, or not compared (with why). */
export interface VerifyComparison {
  readonly subject: string;
  readonly status: 'match' | 'mismatch' | 'failed' | 'skipped';
  readonly source: string;
  readonly target: string;
  readonly reason?: string;
}

/** What verifyApp found: ok only when every comparison matched (or was skipped) and both healths passed. */
export interface VerifyResult {
  readonly app: string;
  readonly source: string;
  readonly target: string;
  readonly ok: boolean;
  readonly comparisons: readonly VerifyComparison[];
  readonly sourceHealth: HealthReport;
  readonly targetHealth: HealthReport;
  readonly sourceFacts: AppFacts;
  readonly targetFacts: AppFacts;
}

/** A host verify talks to: a Host (caller owns it), a named host of the global config, or "local". */
export type VerifyHost = Host | string;

/** Options of verifyApp. */
export interface VerifyOptions {
  readonly app: string;
  readonly source: VerifyHost;
  readonly target: VerifyHost;
  /** Global config naming the hosts (default: DEPLOY_CONFIG / the usual places). */
  readonly configPath?: string;
  /** Global options for `deploy` runs on a local host (e.g. --apps-root X --state-dir Y). */
  readonly localArgs?: readonly string[];
  /** Tables whose row counts are reported but not compared (e.g. sessions the source keeps writing). */
  readonly ignoreTables?: readonly string[];
}

/** A client running `deploy` on a host: this very CLI locally, `deploy` from PATH over ssh. */
function deployClient(host: Host, localArgs: readonly string[]): DeployClient {
  return host.kind === 'local'
    ? new DeployClient(host, { command: localDeployCommand(), globalArgs: localArgs })
    : new DeployClient(host);
}

async function openHost(host: VerifyHost, configPath: string | undefined): Promise<{ host: Host; owned: boolean }> {
  if (typeof host !== 'string') return { host, owned: false };
  if (host === 'local') return { host: new LocalHost('local'), owned: true };
  return { host: await resolveNamedHost(host, configPath), owned: true };
}

/** Compares two hosts' health reports and facts; pure, so it is tested as data. */
export function compareApp(input: {
  source: { health: HealthReport; facts: AppFacts };
  target: { health: HealthReport; facts: AppFacts };
  logFiles: readonly string[];
  ignoreTables?: readonly string[];
}): VerifyComparison[] {
  const { source, target } = input;
  const comparisons: VerifyComparison[] = [];
  for (const [side, report] of [
    ['source', source.health],
    ['target', target.health],
  ] as const) {
    for (const check of report.checks.filter((c) => c.status === 'failed')) {
      comparisons.push({
        subject: `health ${check.name} (${side})`,
        status: 'failed',
        source: side === 'source' ? 'FAILED' : '',
        target: side === 'target' ? 'FAILED' : '',
        reason: check.reason ?? 'failed',
      });
    }
  }
  const targetCheck = (name: string): CheckResult | undefined => target.health.checks.find((c) => c.name === name);
  for (const check of source.health.checks) {
    const other = targetCheck(check.name);
    if (check.type === 'uploads') {
      const left = (check.facts?.sample ?? []) as SampledFile[];
      const right = (other?.facts?.sample ?? []) as SampledFile[];
      const differing = left
        .filter((file) => {
          const served = right.find((r) => r.name === file.name);
          // A prefix hash (max_bytes) says nothing of the rest: the sizes must agree too.
          return served === undefined || served.sha256 !== file.sha256 || served.bytes !== file.bytes;
        })
        .map((file) => file.name);
      comparisons.push({
        subject: `uploads sample ${check.name}`,
        status: left.length === 0 ? 'skipped' : differing.length === 0 ? 'match' : 'mismatch',
        source: `${left.length} file(s)`,
        target: `${right.length} file(s) checked`,
        ...(left.length === 0
          ? { reason: 'the source has no files to sample' }
          : differing.length > 0
            ? { reason: `missing or different on the target: ${differing.join(', ')}` }
            : {}),
      });
    }
    if (check.type === 'db-page') {
      const left = check.facts?.sha256 as string | undefined;
      const right = other?.facts?.sha256 as string | undefined;
      comparisons.push({
        subject: `db-page ${check.name} digest`,
        status: left === undefined || right === undefined ? 'failed' : left === right ? 'match' : 'mismatch',
        source: left?.slice(0, 12) ?? '(no page)',
        target: right?.slice(0, 12) ?? '(no page)',
        ...(left !== right
          ? {
              reason:
                left === undefined || right === undefined
                  ? 'the page could not be read on one side'
                  : 'the page text differs',
            }
          : {}),
      });
    }
  }
  for (const volume of source.facts.volumes) {
    const other = target.facts.volumes.find((v) => v.name === volume.name);
    const isLogs = input.logFiles.some(
      (file) => file === volume.path || file.startsWith(`${volume.path.replace(/\/$/, '')}/`),
    );
    const left = `${volume.files} files, ${volume.bytes} bytes`;
    const right = other ? `${other.files} files, ${other.bytes} bytes` : '(no such volume)';
    if (isLogs)
      comparisons.push({
        subject: `volume ${volume.name}`,
        status: 'skipped',
        source: left,
        target: right,
        reason: 'holds logs the running app keeps writing',
      });
    else if (volume.error || other?.error)
      comparisons.push({
        subject: `volume ${volume.name}`,
        status: 'failed',
        source: left,
        target: right,
        reason: volume.error ?? other?.error ?? '',
      });
    else
      comparisons.push({
        subject: `volume ${volume.name}`,
        status: other && other.files === volume.files && other.bytes === volume.bytes ? 'match' : 'mismatch',
        source: left,
        target: right,
      });
  }
  const leftDb = source.facts.database;
  const rightDb = target.facts.database;
  if (leftDb !== undefined) {
    if (leftDb.error || rightDb?.error || rightDb === undefined) {
      comparisons.push({
        subject: `database ${leftDb.name}`,
        status: 'failed',
        source: leftDb.error ? 'unreadable' : 'ok',
        target: rightDb?.error ? 'unreadable' : rightDb ? 'ok' : '(none)',
        reason: leftDb.error ?? rightDb?.error ?? 'no database on the target',
      });
    } else {
      const tables = [...new Set([...Object.keys(leftDb.tables), ...Object.keys(rightDb.tables)])].sort();
      for (const table of tables) {
        const left = leftDb.tables[table];
        const right = rightDb.tables[table];
        const ignored = input.ignoreTables?.some((name) => name === table || table.endsWith(`.${name}`)) ?? false;
        comparisons.push({
          subject: `rows ${table}`,
          status: ignored ? 'skipped' : left === right ? 'match' : 'mismatch',
          source: left === undefined ? '(no table)' : String(left),
          target: right === undefined ? '(no table)' : String(right),
          ...(ignored ? { reason: 'ignored (--ignore-table)' } : {}),
        });
      }
    }
  }
  return comparisons;
}

/**
 * Verifies that the app on `target` matches the app on `source`: row counts and volume counts from
 * `deploy facts` on both (taken first, before any check writes), then `deploy health` on the source
 * and on the target with the source's result as baseline (same upload names, same checksums), and
 * the db-page digests. Throws the DeployClient's error when a host cannot run deploy; mismatches come back as data.
 */
export async function verifyApp(options: VerifyOptions): Promise<VerifyResult> {
  const source = await openHost(options.source, options.configPath);
  const target = await openHost(options.target, options.configPath);
  const localArgs = options.localArgs ?? [];
  try {
    const sourceDeploy = deployClient(source.host, localArgs);
    const targetDeploy = deployClient(target.host, localArgs);
    const [sourceFacts, targetFacts] = await Promise.all([
      sourceDeploy.json<AppFacts>(['facts', options.app]),
      targetDeploy.json<AppFacts>(['facts', options.app]),
    ]);
    // A failing check exits 1 with its report: that is a result to compare, not an error.
    const sourceHealth = await sourceDeploy.json<HealthReport>(['health', options.app], { acceptExitCodes: [1] });
    const targetHealth = await targetDeploy.json<HealthReport>(['health', options.app, '--baseline=-'], {
      input: JSON.stringify(sourceHealth),
      acceptExitCodes: [1],
    });
    const logFiles = sourceFacts.logFiles ?? [];
    const comparisons = compareApp({
      source: { health: sourceHealth, facts: sourceFacts },
      target: { health: targetHealth, facts: targetFacts },
      logFiles,
      ...(options.ignoreTables ? { ignoreTables: options.ignoreTables } : {}),
    });
    const ok = comparisons.every((c) => c.status === 'match' || c.status === 'skipped');
    return {
      app: options.app,
      source: source.host.name,
      target: target.host.name,
      ok,
      comparisons,
      sourceHealth,
      targetHealth,
      sourceFacts,
      targetFacts,
    };
  } finally {
    if (source.owned) await source.host.close();
    if (target.owned) await target.host.close();
  }
}
