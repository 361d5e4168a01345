import { posix } from 'node:path';
import type { AppFolder, Host } from '@deploykit/core';
import { countTables } from '../health/app-facts.js';
import { listArchivedVolume } from './archive-listing.js';
import { compareDigests, type FileDigest } from './checksums.js';
import { compareFidelity, isFidelityTrivial, type FidelityMetadata } from './fidelity.js';
import type { MigrateStep, MigrationContext } from './plan.js';

/** What verification found, check by check. */
export interface VerificationReport {
  readonly ok: boolean;
  readonly checks: readonly { readonly name: string; readonly ok: boolean; readonly detail: string }[];
  readonly problems: readonly string[];
}

interface VerifyContext extends MigrationContext {
  readonly step: Extract<MigrateStep, { kind: 'verify' }>;
  /** Row counts per table taken on the source right after the backup (what the archive holds). */
  readonly sourceRowsAtBackup?: Readonly<Record<string, number>>;
}

/** Row counts per table on the source, counted in this process (the source is where deploy runs). */
export async function readSourceRowCounts(app: AppFolder, host: Host): Promise<{ tables?: Record<string, number>; error?: string }> {
  const database = await countTables(app, host);
  if (!database || database.error) return { error: database?.error ?? 'the app has no database' };
  return { tables: { ...database.tables } };
}

/** Row counts per table on the target, through `deploy facts` there (its app folder and database admin env). */
async function readTargetRowCounts(host: Host, deployCommand: readonly string[], app: string): Promise<{ tables?: Record<string, number>; error?: string }> {
  const facts = await runJson<{ database?: { tables: Record<string, number>; error?: string } }>(host, [...deployCommand, 'facts', app, '--json', '--quiet']);
  const database = facts.value?.database;
  if (!database || database.error) return { error: database?.error ?? facts.error ?? 'no database facts' };
  return { tables: database.tables };
}

async function runJson<T>(host: Host, argv: readonly string[], env?: Record<string, string>): Promise<{ value?: T; error?: string }> {
  const result = await host.run({ argv, ...(env ? { env } : {}), maxBuffer: 512 * 1024 * 1024, timeoutMs: 30 * 60_000 });
  try {
    return { value: JSON.parse(result.stdout) as T, ...(result.exitCode !== 0 ? { error: `exit ${result.exitCode}: ${result.stderr.trim().split('\n').slice(-3).join(' ')}` } : {}) };
  } catch {
    return { error: `exit ${result.exitCode}: ${result.stderr.trim().split('\n').slice(-3).join(' ') || 'no JSON output'}` };
  }
}

function report(checks: VerificationReport['checks']): VerificationReport {
  const problems = checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  return { ok: problems.length === 0, checks, problems };
}

/**
 * Before the app starts on the target: every volume file against the archive listing (count,
 * bytes, SHA-256), table row counts against the source, and the carried metadata.
 */
export async function verifyData(context: VerifyContext): Promise<VerificationReport> {
  const { app, input, localHost, targetHost, plan } = context;
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  const remoteDeploy = input.remoteDeployCommand;
  for (const volume of app.manifest.volumes) {
    const path = posix.normalize(volume.path).replace(/\/$/, '');
    const expected = await listArchivedVolume(localHost, { ...input.borgEnv }, plan.archive, path);
    const targetDir = posix.join(input.target.facts.app.dir, path);
    const got = await runJson<{ files: FileDigest[] }>(targetHost, [...remoteDeploy, 'receive', 'checksums', '--dir', targetDir, '--json', '--quiet']);
    const bytes = expected.reduce((sum, file) => sum + file.size, 0);
    if (!got.value) {
      checks.push({ name: `volume ${volume.name}`, ok: false, detail: `cannot read the target copy: ${got.error}` });
      continue;
    }
    const differences = compareDigests(expected, got.value.files);
    checks.push({
      name: `volume ${volume.name}`,
      ok: differences.length === 0,
      detail: differences.length === 0 ? `${expected.length} files, ${bytes} bytes, every SHA-256 equal to the archive` : differences.join('; '),
    });
    const carried = input.fidelity[volume.name];
    if (carried && !isFidelityTrivial(carried)) {
      const scanned = await runJson<FidelityMetadata>(targetHost, [...remoteDeploy, 'receive', 'scan-metadata', '--dir', targetDir, '--json', '--quiet']);
      const diff = scanned.value ? compareFidelity(carried, scanned.value) : [`cannot scan: ${scanned.error}`];
      checks.push({
        name: `metadata ${volume.name}`,
        ok: diff.length === 0,
        detail: diff.length === 0 ? `${carried.xattrFiles} xattr files, ${carried.aclFiles} ACL files, ${carried.lateMtimes.length} late mtimes, ${carried.sparseFiles.length} sparse files match` : diff.join('; '),
      });
    }
  }
  if (app.manifest.database.kind !== 'none') {
    const live = await readSourceRowCounts(app, localHost);
    const target = await readTargetRowCounts(targetHost, remoteDeploy, app.name);
    const expected = context.sourceRowsAtBackup ?? live.tables;
    if (!expected || !target.tables) {
      checks.push({ name: 'database rows', ok: false, detail: `cannot count rows: source ${live.error ?? 'ok'}, target ${target.error ?? 'ok'}` });
    } else {
      const got = target.tables;
      const tables = [...new Set([...Object.keys(expected), ...Object.keys(got)])].sort();
      const differing = tables.filter((table) => expected[table] !== got[table]).map((table) => `${table} source ${expected[table] ?? 'absent'}, target ${got[table] ?? 'absent'}`);
      const rows = Object.values(got).reduce((sum, count) => sum + count, 0);
      checks.push({ name: 'database rows', ok: differing.length === 0, detail: differing.length === 0 ? `${tables.length} tables, ${rows} rows, every count equal to the source at backup time` : differing.join('; ') });
      // Writes on the source after the backup are not on the target: say so, the operator decides.
      const moved = live.tables ? Object.keys(live.tables).filter((table) => live.tables![table] !== expected[table]) : [];
      if (moved.length > 0) {
        context.bus.emit('migrate.warning', {
          app: app.name,
          level: 'warn',
          message: `the source changed after the backup (${moved.map((t) => `${t}: ${expected[t] ?? 0} -> ${live.tables![t]}`).join(', ')}); stop writes on the source and migrate again before cutover if those rows matter`,
        });
      }
    }
  }
  if (input.withHistory) {
    const targetEnv: Record<string, string> = { ...input.borgEnv, BORG_REPO: input.targetBorgRepo ?? input.borgEnv.BORG_REPO ?? '' };
    delete targetEnv.BORG_PASSCOMMAND;
    if (input.borgEnv.BORG_PASSCOMMAND && app.manifest.borg?.passphrase_file) {
      targetEnv.BORG_PASSCOMMAND = `cat -- ${posix.join(input.target.facts.app.dir, app.manifest.borg.passphrase_file)}`;
    }
    targetEnv.BORG_BASE_DIR = posix.join(input.target.facts.stateDir, 'apps', app.name, 'borg');
    const sourceList = await localHost.run({ argv: ['borg', 'list', '--short'], env: input.borgEnv });
    const targetList = await targetHost.run({ argv: ['borg', 'list', '--short'], env: targetEnv });
    const same = sourceList.exitCode === 0 && targetList.exitCode === 0 && sourceList.stdout === targetList.stdout;
    checks.push({
      name: 'borg history',
      ok: same,
      detail: same ? `${sourceList.stdout.split('\n').filter(Boolean).length} archives listed on both` : `archive lists differ (source exit ${sourceList.exitCode}, target exit ${targetList.exitCode}: ${targetList.stderr.trim().split('\n').pop() ?? ''})`,
    });
    const check = await targetHost.run({ argv: ['borg', 'check'], env: targetEnv, timeoutMs: 30 * 60_000 });
    checks.push({ name: 'borg check', ok: check.exitCode === 0, detail: check.exitCode === 0 ? 'repository and archives consistent on the target' : `borg check exit ${check.exitCode}: ${check.stderr.trim().split('\n').slice(-2).join(' ')}` });
  }
  for (const check of checks) context.bus.emit('migrate.verify', { app: app.name, level: check.ok ? 'info' : 'error', message: `verify ${check.name}: ${check.ok ? 'ok' : 'FAILED'} - ${check.detail}` });
  return report(checks);
}

/** After start: the app's own health checks on the target. */
export async function verifyTarget(context: VerifyContext & { previous: VerificationReport | undefined }): Promise<VerificationReport> {
  const { app, targetHost, step } = context;
  const health = await runJson<{ ok: boolean; checks: { name: string; status: string; reason?: string }[] }>(targetHost, [...step.argv, '--quiet']);
  const checks = [...(context.previous?.checks ?? [])];
  if (!health.value) checks.push({ name: 'health', ok: false, detail: `deploy health did not answer: ${health.error}` });
  else {
    for (const check of health.value.checks) {
      checks.push({ name: `health ${check.name}`, ok: check.status !== 'failed', detail: check.status === 'failed' ? check.reason ?? 'failed' : 'ok' });
      context.bus.emit('migrate.verify', { app: app.name, level: check.status === 'failed' ? 'error' : 'info', message: `health ${check.name}: ${check.status}${check.reason && check.status === 'failed' ? ` - ${check.reason}` : ''}` });
    }
  }
  return report(checks);
}
