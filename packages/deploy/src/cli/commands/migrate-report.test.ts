import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MigrateReport } from '../../migrate/source-run.js';
import type { TargetReport } from '../../receive/target-run.js';
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
    verification: { ok: true, checks: [{ name: 'files uploads', ok: true, detail: '3 files' }, ...healthChecks.map((name) => ({ name: `health ${name}`, ok: true, detail: 'passed' }))], problems: [] },
    rolledBack: [],
    rollbackFailed: [],
    kept: [],
    durationMs: 1000,
  };
  return { ok: true, app: 'guestbook', runId: targetReport.runId, target: 'b', transport: 'ssh', archive: '20261202T010000Z', journal: '/state/j.jsonl', attempts: 1, parts: [], stagedBytes: 0, targetReport, durationMs: 2000 };
}

test('the cutover checklist ticks the health checks the target ran, by name, and no login flow or log scan the app does not have', () => {
  const plain = renderReport(reportWithHealth(['healthz']));
  assert.match(plain, /\[x\] health checks pass on b: healthz\n/);
  assert.doesNotMatch(plain, /login|log scan/);
  const full = renderReport(reportWithHealth(['healthz', 'admin login', 'log scan']));
  assert.match(full, /\[x\] health checks pass on b: healthz, admin login, log scan\n/);
});
