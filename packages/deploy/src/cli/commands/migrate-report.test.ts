import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MigrateReport } from '../../migrate/source-run.js';
import type { TargetReport } from '../../receive/target-run.js';
import { pairedCutoverNextStep } from '../../migrate/paired-cutover.js';
import { renderTargetReport } from '../../receive/render-target-report.js';
import { renderCutoverReport } from './cutover.js';
import { renderReport } from './migrate.js';

function reportWithHealth(healthChecks: readonly string[]): MigrateReport {
  const targetReport: TargetReport = {
    ok: true,
    app: 'guestbook',
    runId: '20261202T010000Z-abcdef',
    host: 'b',
    source: 'a',
    parts: [],
    recovered: [],
    verification: {
      ok: true,
      checks: [
        { name: 'files uploads', ok: true, detail: '3 files' },
        ...healthChecks.map((name) => ({ name: `health ${name}`, ok: true, detail: 'passed' })),
      ],
      problems: [],
    },
    rolledBack: [],
    rollbackFailed: [],
    kept: [],
    durationMs: 1000,
  };
  return {
    ok: true,
    app: 'guestbook',
    runId: targetReport.runId,
    target: 'b',
    transport: 'ssh',
    archive: '20261202T010000Z',
    journal: '/state/j.jsonl',
    attempts: 1,
    parts: [],
    stagedBytes: 0,
    targetReport,
    durationMs: 2000,
  };
}

test('the cutover checklist ticks the health checks the target ran, by name, and no login flow or log scan the app does not have', () => {
  const plain = renderReport(reportWithHealth(['healthz']));
  assert.match(plain, /\[x\] health checks pass on b: healthz\n/);
  assert.doesNotMatch(plain, /login|log scan/);
  const full = renderReport(reportWithHealth(['healthz', 'admin login', 'log scan']));
  assert.match(full, /\[x\] health checks pass on b: healthz, admin login, log scan\n/);
});

test('a paired cutover: the source says it stays stopped and which command fits which outcome; the new host shows only the one that fits', () => {
  const base = reportWithHealth([]);
  const cutover = {
    baseArchive: 'g-1',
    baseRunId: 'R0',
    stoppedWith: 'maintenance' as const,
    deltaBytes: 2048,
    databaseBytes: 4096,
    volumes: { uploads: { added: 1, changed: 1, removed: 1, metadata: 0, bytes: 30 } },
    sourceResumed: false,
    awaitingVerdict: {
      confirm: 'deploy cutover guestbook --confirm <code the new host shows>',
      resume: 'deploy maintenance guestbook off',
    },
  };
  const source = renderCutoverReport({
    ...base,
    target: 'the new host',
    transport: 'ffl',
    targetReport: undefined,
    pairing: { delivered: true, path: 'direct', pullMs: 1500 },
    cutover,
  } as MigrateReport);
  assert.match(
    source,
    /Delivered the cutover of guestbook to the new host in [\d.]+ s \(pulled in 1\.5 s, path direct\)/,
  );
  assert.match(source, /uploads: 1 added, 1 changed, 1 removed/);
  assert.match(source, /guestbook stays stopped here \(maintenance page\)/);
  assert.match(source, /success and shows a code: +deploy cutover guestbook --confirm <code the new host shows>/);
  assert.match(source, /rollback: +deploy maintenance guestbook off/);
  assert.doesNotMatch(source, /marked as moved to/);
  const target = (ok: boolean, rollbackFailed: string[] = []): string =>
    renderTargetReport({
      ...base.targetReport!,
      ok,
      rollbackFailed,
      ...(ok
        ? {}
        : {
            failure: {
              step: 'health',
              stage: 'health',
              kind: 'transport',
              code: 'TARGET_UNHEALTHY',
              message: 'notes page failed',
              retryable: false,
            },
          }),
      cutover: {
        baseArchive: 'g-1',
        applied: {},
        onSource: pairedCutoverNextStep({
          app: 'guestbook',
          ok,
          rollbackFailed,
          confirmCode: 'ACDE-FGHJ',
          stoppedWith: 'maintenance',
        }),
      },
    });
  assert.match(
    target(true),
    /on a, run \(it marks the copy there as moved; it stays stopped until then\):\n\n {6}deploy cutover guestbook --confirm ACDE-FGHJ\n/,
  );
  const failed = target(false);
  assert.match(failed, /Cutover of guestbook FAILED at step \[health\]/);
  assert.match(failed, /\n {6}deploy maintenance guestbook off\n/);
  assert.doesNotMatch(failed, /ACDE|--confirm/, 'a failure never shows the code');
  assert.match(target(false, ['stop-app']), /first make sure guestbook does not run here/);
});
