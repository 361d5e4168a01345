import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '@deploykit/host';
import {
  chooseMigrationArchivesToPrune,
  pruneMigrationArchives,
  readMigrationArchiveRecords,
} from './archive-retention.js';
import { Journal, journalPath } from './journal.js';

const host = new LocalHost();

test("retention keeps the newest N migration archives and each target's newest finished one, never an archive no migration made", () => {
  const repo = [
    { name: 'own-1', start: '2026-12-01T10:00:00.000000' },
    { name: 'm1', start: '2026-12-01T11:00:00.000000' },
    { name: 'm2', start: '2026-12-01T12:00:00.000000' },
    { name: 'own-2', start: '2026-12-01T12:30:00.000000' },
    { name: 'm3', start: '2026-12-01T13:00:00.000000' },
    { name: 'm4', start: '2026-12-01T14:00:00.000000' },
  ];
  // m5 was made by a migration but is no longer in the repository: it is not named at all.
  const records = { made: ['m1', 'm2', 'm3', 'm4', 'm5'], finishedByTarget: { b: 'm1', c: 'm3' } };
  assert.deepEqual(chooseMigrationArchivesToPrune(repo, records, 2), {
    prune: ['m2'],
    kept: ['m4', 'm3', 'm1'],
    protected: ['m1'],
  });
  assert.deepEqual(chooseMigrationArchivesToPrune(repo, records, 0), {
    prune: ['m4', 'm2'],
    kept: ['m3', 'm1'],
    protected: ['m3', 'm1'],
  });
  assert.deepEqual(chooseMigrationArchivesToPrune(repo, { made: [], finishedByTarget: {} }, 0).prune, []);
});

test("pruning a real repository: the run records say which archives migrations made; the app's own backups stay", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-retention-'));
  const env = {
    BORG_REPO: join(dir, 'repo'),
    BORG_PASSPHRASE: '',
    BORG_BASE_DIR: join(dir, '.borg'),
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
  };
  const stateDir = join(dir, 'state');
  try {
    const names = ['notes-1', 'notes-2', 'notes-3', 'notes-4', 'notes-5'];
    const made = await host.run({
      argv: [
        'bash',
        '-euo',
        'pipefail',
        '-c',
        `mkdir data && borg init -e none repo && for a in ${names.join(' ')}; do echo $a > data/f; borg create repo::$a data; done`,
      ],
      cwd: dir,
      env,
    });
    assert.equal(made.exitCode, 0, made.stderr);
    // notes-1 and notes-4 are the app's own backups; 2 (to b), 3 (to c, failed there) and 5 (to b) are migrations'.
    const runs: [string, string, string, boolean][] = [
      ['r2', 'notes-2', 'b', true],
      ['r3', 'notes-3', 'c', false],
      ['r5', 'notes-5', 'b', true],
    ];
    for (const [runId, archive, target, finished] of runs) {
      const journal = new Journal(journalPath(stateDir, 'notes', runId));
      await journal.write({ step: 'run', status: 'ok', detail: { target, archive } });
      await journal.write({ step: 'backup', status: 'ok', detail: { archive } });
      if (finished) await journal.write({ step: 'finished', status: 'ok', detail: { target, archive } });
    }
    assert.deepEqual(await readMigrationArchiveRecords(stateDir, 'notes'), {
      made: ['notes-2', 'notes-3', 'notes-5'],
      finishedByTarget: { b: 'notes-5' },
    });
    const report = await pruneMigrationArchives({ host, borgEnv: env, stateDir, app: 'notes', keep: 1 });
    assert.deepEqual(report, {
      keep: 1,
      pruned: ['notes-3', 'notes-2'],
      kept: ['notes-5'],
      protected: [],
      compacted: true,
    });
    const left = await host.run({ argv: ['borg', 'list', '--short'], env });
    assert.deepEqual(left.stdout.trim().split('\n'), ['notes-1', 'notes-4', 'notes-5']);
    // Nothing more to prune: a second run names nothing.
    assert.deepEqual(
      (await pruneMigrationArchives({ host, borgEnv: env, stateDir, app: 'notes', keep: 1 })).pruned,
      [],
    );
    // A repository borg cannot open: the report says so, nothing throws.
    const broken = await pruneMigrationArchives({
      host,
      borgEnv: { ...env, BORG_REPO: join(dir, 'nothing') },
      stateDir,
      app: 'notes',
      keep: 1,
    });
    assert.match(broken.error ?? '', /borg list failed/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
