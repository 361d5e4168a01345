// End to end: `deploy migrate --replace` over a running app that has data of its own (migrated to b
// earlier, written to since). When the new copy fails on b - its health checks fail, or its port is
// taken so it cannot start - the previous folder, database, roles and process are back and serving,
// byte- and row-identical, and nothing of the failed run is left on b. When nothing stands in the way,
// b then serves the source's current app.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { quoteWord } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import { NotesClient, dbFingerprint, diffTreeFingerprints, labShell, parseCredentials, runOrThrow, treeFingerprint, withLab, type TreeFingerprint } from './helpers/index.js';
import { assertExit, deployOnA, findRunLeftovers, parseReport } from './migrate-lab.js';

/** What "the app on b as it was" means: its folder (logs aside: a running app appends to them), database, role and answers. */
interface TargetSnapshot {
  folder: TreeFingerprint;
  database: Awaited<ReturnType<typeof dbFingerprint>>;
  role: string;
  notes: string;
}

async function snapshotB(lab: Lab, credentials: { username: string; password: string }): Promise<TargetSnapshot> {
  const b = labShell(lab, 'b');
  const dir = `${lab.host('b').appsRoot}/notes`;
  const folder = await treeFingerprint(b, dir);
  const client = new NotesClient(`http://${lab.host('b').address}:8080`);
  await client.login(credentials.username, credentials.password);
  const notes = (await client.get('/notes')).body.toString('utf8');
  return {
    folder: { ...folder, entries: folder.entries.filter((entry) => !entry.path.startsWith('data/logs')) },
    // Logging in (above) adds a session; count them out, everything else must be identical.
    database: await dbFingerprint(b, 'notes'),
    role: await runOrThrow(b, `psql -X -At -d postgres -c "SELECT rolname, rolconnlimit, rolpassword FROM pg_authid WHERE rolname = 'notes_app'"`),
    notes: notes.replace(/<input[^>]*csrf[^>]*>/g, ''),
  };
}

function withoutSessions(fingerprint: TargetSnapshot['database']): unknown {
  const { 'public.sessions': _sessions, ...tables } = fingerprint.tables;
  return { ...fingerprint, tables, sequences: { ...fingerprint.sequences, 'public.sessions_id_seq': undefined } };
}

test('--replace: a failing new copy leaves the previous app, data, role and process as they were; a good one replaces it', { timeout: 480_000 }, async (t) => {
  await withLab({ hosts: 2 }, async (lab) => {
    const a = labShell(lab, 'a');
    const b = labShell(lab, 'b');
    const appDir = `${lab.host('a').appsRoot}/notes`;
    let credentials = { username: '', password: '' };
    const notesOnA = ['written on a before the first migration'];

    await t.test('set up: notes on a, migrated to b, then written to on b (a note and an upload only b has)', async () => {
      assertExit(await deployOnA(lab, ['init', 'notes']), 0, 'init');
      assertExit(await deployOnA(lab, ['install', 'notes']), 0, 'install');
      assertExit(await deployOnA(lab, ['start', 'notes']), 0, 'start');
      credentials = parseCredentials(await runOrThrow(a, `cat ${quoteWord(`${appDir}/secrets/admin.credentials`)}`));
      const onA = new NotesClient(`http://${lab.host('a').address}:8080`);
      await onA.login(credentials.username, credentials.password);
      await onA.addNote(notesOnA[0]!, 'x');
      assertExit(await deployOnA(lab, ['migrate', 'notes', '--to', 'b']), 0, 'first migrate');
      const onB = new NotesClient(`http://${lab.host('b').address}:8080`);
      await onB.login(credentials.username, credentials.password);
      await onB.addNote('only on b', 'written after the migration');
      await onB.upload('b-only.bin', 'bytes only b has');
      // A role attribute only b has: the replacing run's roles SQL would change it.
      await runOrThrow(b, `psql -X -q -d postgres -c "ALTER ROLE notes_app CONNECTION LIMIT 7"`);
      await onA.addNote('written on a after the first migration', 'y');
    });

    const assertPreviousBack = async (before: TargetSnapshot, runId: string): Promise<void> => {
      const after = await snapshotB(lab, credentials);
      assert.deepEqual(diffTreeFingerprints(before.folder, after.folder), [], 'the previous app folder is back, byte-identical');
      assert.deepEqual(withoutSessions(after.database), withoutSessions(before.database), 'the previous database is back, row-identical');
      assert.equal(after.role, before.role, 'the role is back as it was (connection limit 7, its password verifier)');
      assert.match(after.notes, /only on b/, 'the previous app serves its own data');
      assert.equal(after.notes, before.notes);
      assert.deepEqual(await findRunLeftovers(lab, 'b', runId), [], 'nothing of the failed run is left on b');
    };

    await t.test('the new copy fails its health checks: the previous app is back and serving', async () => {
      const before = await snapshotB(lab, credentials);
      const manifest = readFileSync(`${appDir}/app.yaml`, 'utf8');
      writeFileSync(`${appDir}/app.yaml`, manifest.replace('contains: Welcome to notes', 'contains: A text this page never shows'));
      try {
        const run = await deployOnA(lab, ['migrate', 'notes', '--to', 'b', '--replace', '--json']);
        assertExit(run, 4, 'replace with an unhealthy new copy');
        const report = parseReport(run);
        assert.equal(report.failure?.code, 'TARGET_UNHEALTHY');
        assert.match(report.failure?.message ?? '', /notes page/);
        const undone = report.targetReport?.rolledBack.join('\n') ?? '';
        assert.match(undone, /put database notes back/);
        assert.match(undone, /put \S+\/apps\/notes back/);
        assert.match(undone, /start the replaced app/);
        assert.deepEqual(report.targetReport?.rollbackFailed, []);
        await assertPreviousBack(before, report.runId);
      } finally {
        writeFileSync(`${appDir}/app.yaml`, manifest);
      }
    });

    await t.test('the new copy cannot start (its port is taken): the previous app is back and serving', async () => {
      const before = await snapshotB(lab, credentials);
      const manifest = readFileSync(`${appDir}/app.yaml`, 'utf8');
      const config = readFileSync(`${appDir}/config/app.env`, 'utf8');
      writeFileSync(`${appDir}/app.yaml`, manifest.replace('port: 8080', 'port: 8081'));
      writeFileSync(`${appDir}/config/app.env`, `${config}\nSTART_WAIT_SECONDS=3\n`);
      // Something else holds b's port 8081: it takes connections and answers nothing.
      const blocker = spawn(process.execPath, ['-e', `require('net').createServer((s) => s.destroy()).listen(8081, ${JSON.stringify(lab.host('b').address)}, () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => blocker.stdout.once('data', () => resolve()));
      try {
        const run = await deployOnA(lab, ['migrate', 'notes', '--to', 'b', '--replace', '--json']);
        assertExit(run, 4, 'replace with a new copy that cannot start');
        const report = parseReport(run);
        assert.equal(report.failure?.code, 'TARGET_START_FAILED');
        assert.equal(report.failure?.step, 'target:start');
        await assertPreviousBack(before, report.runId);
      } finally {
        blocker.kill('SIGTERM');
        writeFileSync(`${appDir}/app.yaml`, manifest);
        writeFileSync(`${appDir}/config/app.env`, config);
      }
    });

    await t.test('nothing in the way: b serves the source current app, what was replaced is gone', async () => {
      const run = await deployOnA(lab, ['migrate', 'notes', '--to', 'b', '--replace', '--json']);
      assertExit(run, 0, 'replace');
      const report = parseReport(run);
      assert.equal(report.targetReport?.verification.ok, true);
      const client = new NotesClient(`http://${lab.host('b').address}:8080`);
      await client.login(credentials.username, credentials.password);
      const page = (await client.get('/notes')).body.toString('utf8');
      assert.match(page, /written on a after the first migration/);
      assert.doesNotMatch(page, /only on b/);
      assert.equal((await client.get('/uploads/b-only.bin')).status, 404);
      assert.equal((await runOrThrow(b, `psql -X -At -d postgres -c "SELECT rolconnlimit FROM pg_authid WHERE rolname = 'notes_app'"`)).trim(), '-1', 'the role as on the source');
      assert.deepEqual(await findRunLeftovers(lab, 'b', report.runId).then((found) => found.filter((line) => !line.startsWith('process'))), [], 'nothing set aside is left');
      assert.deepEqual((await runOrThrow(b, `ls -A ${quoteWord(lab.host('b').appsRoot)}`)).trim().split('\n'), ['notes']);
    });
  });
});
