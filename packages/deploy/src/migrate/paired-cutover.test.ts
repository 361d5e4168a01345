import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, journalPath } from './journal.js';
import {
  abandonPendingCutover,
  confirmCodeMatches,
  newConfirmCode,
  normalizeConfirmCode,
  pairedCutoverNextStep,
  pendingCutoverPath,
  readPendingCutover,
  writePendingCutover,
  type PendingCutover,
} from './paired-cutover.js';

test('confirmation codes: XXXX-XXXX from letters nobody misreads; typed in any case, with or without the dash', () => {
  const codes = new Set(Array.from({ length: 200 }, () => newConfirmCode()));
  assert.equal(codes.size, 200, 'no repeats in 200');
  for (const code of codes) assert.match(code, /^[ACDEFGHJKMNPQRTUVWXY34679]{4}-[ACDEFGHJKMNPQRTUVWXY34679]{4}$/);
  assert.equal(normalizeConfirmCode(' k7qd-mx9p '), 'K7QDMX9P');
  assert.ok(confirmCodeMatches('k7qd mx9p', 'K7QD-MX9P'));
  assert.ok(confirmCodeMatches('K7QDMX9P', 'K7QD-MX9P'));
  assert.ok(!confirmCodeMatches('K7QD-MX9Q', 'K7QD-MX9P'));
  assert.ok(!confirmCodeMatches('K7QD', 'K7QD-MX9P'));
  assert.ok(!confirmCodeMatches('', 'K7QD-MX9P'));
});

test('the new host names the one command for the source: confirm with the code on success, else resume writes as they stopped', () => {
  const base = { app: 'notes', confirmCode: 'ACDE-FGHJ' };
  assert.deepEqual(pairedCutoverNextStep({ ...base, ok: true, rollbackFailed: [], stoppedWith: 'maintenance' }), {
    outcome: 'confirm',
    command: 'deploy cutover notes --confirm ACDE-FGHJ',
  });
  assert.deepEqual(pairedCutoverNextStep({ ...base, ok: false, rollbackFailed: [], stoppedWith: 'maintenance' }), {
    outcome: 'resume',
    command: 'deploy maintenance notes off',
  });
  assert.deepEqual(pairedCutoverNextStep({ ...base, ok: false, rollbackFailed: [], stoppedWith: 'stop' }), {
    outcome: 'resume',
    command: 'deploy start notes',
  });
  const failedUndo = pairedCutoverNextStep({
    ...base,
    ok: false,
    rollbackFailed: ['stop the app'],
    stoppedWith: 'stop',
  });
  assert.equal(failedUndo.outcome, 'stop-here-first');
  assert.ok(!failedUndo.command.includes('ACDE'), 'a failure never shows the code');
});

test('the pending mark: 0600, read back; resuming writes drops it and says so in the run record', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'dk-pending-'));
  try {
    const pending: PendingCutover = {
      runId: 'R1',
      to: 'the new host',
      archive: 'notes-2',
      baseArchive: 'notes-1',
      stoppedWith: 'maintenance',
      stoppedAt: '2026-12-02T09:00:00.000Z',
      confirmCode: 'ACDE-FGHJ',
    };
    assert.equal(await readPendingCutover(stateDir, 'notes'), undefined);
    await writePendingCutover(stateDir, 'notes', pending);
    assert.equal((await stat(pendingCutoverPath(stateDir, 'notes'))).mode & 0o777, 0o600, 'it holds the code');
    assert.deepEqual(await readPendingCutover(stateDir, 'notes'), pending);
    await writePendingCutover(stateDir, 'notes', { ...pending, runId: 'R2' });
    assert.equal((await readPendingCutover(stateDir, 'notes'))?.runId, 'R2', 'a newer mark replaces the old one');
    assert.deepEqual(await abandonPendingCutover(stateDir, 'notes', 'deploy maintenance off'), {
      ...pending,
      runId: 'R2',
    });
    assert.equal(await readPendingCutover(stateDir, 'notes'), undefined);
    const record = await Journal.read(journalPath(stateDir, 'notes', 'R2'));
    assert.deepEqual(
      record.map((line) => [line.step, line.detail?.how]),
      [['resumed', 'deploy maintenance off']],
    );
    assert.equal(
      await abandonPendingCutover(stateDir, 'notes', 'deploy start'),
      undefined,
      'nothing pending: nothing to abandon',
    );
    await writePendingCutover(stateDir, 'other', pending);
    await rm(pendingCutoverPath(stateDir, 'other'));
    assert.equal(await readFile(pendingCutoverPath(stateDir, 'other'), 'utf8').catch(() => 'gone'), 'gone');
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});
