import { formatBytes, formatDuration } from '@deploykit/core';
import { renderTable } from '../cli/table.js';
import type { TargetReport } from './target-run.js';

/** The verification table of a target report (check, result, detail). */
export function renderVerification(report: Pick<TargetReport, 'verification'>): string {
  return renderTable(
    ['VERIFY', 'RESULT', 'DETAIL'],
    report.verification.checks.map((check) => [check.name, check.ok ? 'ok' : 'FAILED', check.detail]),
  );
}

/** What happened to earlier runs and to this run's changes on a failure, as report lines. */
export function renderTargetAftermath(report: TargetReport): string[] {
  const lines: string[] = [];
  for (const run of report.recovered) {
    lines.push(
      `  earlier run ${run.runId}: ${run.outcome === 'kept' ? `kept ${run.keptParts.join(', ')} for a resume` : 'cleaned up'}${run.undone.length > 0 ? ` (${run.undone.join('; ')})` : ''}`,
    );
  }
  if (report.reused)
    lines.push(
      `  reused from run ${report.reused.fromRun}: ${report.reused.parts.join(', ')} (verified there, not sent again)`,
    );
  if (!report.ok) {
    lines.push(
      `  rolled back on ${report.host}: ${report.rolledBack.length > 0 ? report.rolledBack.join('; ') : 'nothing had changed'}`,
    );
    if (report.rollbackFailed.length > 0)
      lines.push(
        `  COULD NOT UNDO: ${report.rollbackFailed.join('; ')} (the run record lists what is left: ${report.journal ?? '?'})`,
      );
    if (report.kept.length > 0)
      lines.push(
        `  kept for a resume (invisible, nothing running): ${report.kept.join(', ')}; the next migration of ${report.app} reuses or removes them`,
      );
  }
  return lines;
}

/** Renders a target-side run's report for a person on the target (`deploy receive` without --json). */
export function renderTargetReport(report: TargetReport): string {
  const lines: string[] = [];
  if (report.parts.length > 0) {
    lines.push(
      renderTable(
        ['PART', 'STATUS', 'BYTES', 'TIME', 'ATTEMPTS'],
        report.parts.map((part) => [
          part.id,
          part.status,
          formatBytes(part.bytes),
          formatDuration(part.elapsedMs),
          String(part.attempts),
        ]),
      ),
    );
  }
  if (report.verification.checks.length > 0) lines.push('', renderVerification(report));
  if (report.check) {
    lines.push(
      report.ok
        ? `${report.app} can be received on ${report.host}${report.layout ? `: ${formatBytes(report.layout.freeBytes)} free for ${formatBytes(report.layout.neededBytes)}` : ''}`
        : `${report.app} cannot be received on ${report.host}: ${report.failure?.message}`,
    );
    if (report.resumable)
      lines.push(
        `  run ${report.resumable.runId} keeps ${report.resumable.parts.map((part) => part.id).join(', ')} of archive ${report.resumable.archive} for a resume`,
      );
    return lines.join('\n');
  }
  const onSource = report.cutover?.onSource;
  if (onSource) {
    // A paired cutover: the source waits, stopped, for its operator to type in this verdict (decision 0011).
    const source = report.source ?? 'the source host';
    if (report.ok) {
      lines.push(
        '',
        `Cut over ${report.app} from ${source} in ${formatDuration(report.durationMs)}: the delta applied, verified, started and healthy${report.baseUrl ? ` at ${report.baseUrl}` : ''}.`,
        `  [x] files: every volume file matches the final archive; database rows as on ${source} after its writes stopped`,
        `  [ ] on ${source}, run (it marks the copy there as moved; it stays stopped until then):`,
        '',
        `      ${onSource.command}`,
        '',
        `  [ ] point DNS here, watch the logs; then deploy stop ${report.app} on ${source}`,
      );
    } else {
      if (report.failure)
        lines.push(
          '',
          `Cutover of ${report.app} FAILED at step [${report.failure.step}] (${report.failure.stage}): ${report.failure.message}`,
          ...(report.failure.hint ? [`  next: ${report.failure.hint}`] : []),
        );
      lines.push(...renderTargetAftermath(report));
      if (onSource.outcome === 'stop-here-first')
        lines.push(
          `  [ ] first make sure ${report.app} does not run here (deploy stop ${report.app}): a rollback step failed`,
        );
      // The source resumes by itself only when the bundle broke off before its end left it; it says so there.
      lines.push(
        `  [ ] on ${source}, unless it said it serves again by itself, run (it serves there again${onSource.outcome === 'resume' ? '; nothing of this cutover stayed here' : ''}):`,
        '',
        `      ${onSource.command}`,
        '',
      );
    }
    if (report.journal) lines.push(`  run record on ${report.host}: ${report.journal}`);
    return lines.join('\n');
  }
  if (report.ok) {
    lines.push(
      '',
      `Received ${report.app} from ${report.source ?? '?'} in ${formatDuration(report.durationMs)}: verified, installed, started and healthy${report.baseUrl ? ` at ${report.baseUrl}` : ''}. Cutover checklist:`,
      '  [x] files: every volume file matches the archive (count, bytes, SHA-256); database rows as at the backup',
      `  [x] health checks pass here${report.baseUrl ? ` (${report.baseUrl})` : ''}`,
      `  [ ] stop writes on the source: deploy stop ${report.app} (on ${report.source ?? 'the source host'})`,
      `  [ ] point DNS here, watch the logs, then retire the source copy`,
    );
  } else if (report.failure) {
    lines.push(
      '',
      `Receiving ${report.app} FAILED at step [${report.failure.step}] (${report.failure.stage}): ${report.failure.message}`,
      ...(report.failure.hint ? [`  next: ${report.failure.hint}`] : []),
    );
  }
  lines.push(...renderTargetAftermath(report));
  if (report.journal) lines.push(`  run record on ${report.host}: ${report.journal}`);
  return lines.join('\n');
}
