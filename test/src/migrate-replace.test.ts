// End to end: `deploy migrate --replace` over a running app that has data of its own (migrated to b
// earlier, written to since). When the new copy fails on b - its health checks fail, or its port is
// taken so it cannot start - the previous folder, database, roles and process are back and serving,
// byte- and row-identical, and nothing of the failed run is left on b. When nothing stands in the way,
// b then serves the source's current app. Last, `deploy remove` takes notes off a (refused without --yes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { quoteWord } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import {
  NotesClient,
  dbFingerprint,
  diffTreeFingerprints,
  labShell,
  parseCredentials,
  runOrThrow,
  treeFingerprint,
  withLab,
  type TreeFingerprint,
} from './helpers/index.js';
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
    role: await runOrThrow(
      b,
      `psql -X -At -d postgres -c "SELECT rolname, rolconnlimit, rolpassword FROM pg_authid WHERE rolname = 'notes_app'"`,
    ),
    notes: notes.replace(/<input[^>]*csrf[^>]*>/g, ''),
  };
}

function withoutSessions(fingerprint: TargetSnapshot['database']): unknown {
  const { 'public.sessions': _sessions, ...tables } = fingerprint.tables;
  return { ...fingerprint, tables, sequences: { ...fingerprint.sequences, 'public.sessions_id_seq': undefined } };
}

test('--replace: a failing new copy leaves the previous app, data, role and process as they were; a good one replaces it; then remove', {
  timeout: 720_000,
}, async (t) => {
  await withLab({ hosts: 2 }, async (lab) => {
    const a = labShell(lab, 'a');
    const b = labShell(lab, 'b');
    const appDir = `${lab.host('a').appsRoot}/notes`;
    let credentials = { username: '', password: '' };
    const notesOnA = ['written on a before the first migration'];

    await t.test(
      'set up: notes on a, migrated to b, then written to on b (a note and an upload only b has)',
      async () => {
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
      },
    );

    const assertPreviousBack = async (before: TargetSnapshot, runId: string): Promise<void> => {
      const after = await snapshotB(lab, credentials);
      assert.deepEqual(
        diffTreeFingerprints(before.folder, after.folder),
        [],
        'the previous app folder is back, byte-identical',
      );
      assert.deepEqual(
        withoutSessions(after.database),
        withoutSessions(before.database),
        'the previous database is back, row-identical',
      );
      assert.equal(after.role, before.role, 'the role is back as it was (connection limit 7, its password verifier)');
      assert.match(after.notes, /only on b/, 'the previous app serves its own data');
      assert.equal(after.notes, before.notes);
      assert.deepEqual(await findRunLeftovers(lab, 'b', runId), [], 'nothing of the failed run is left on b');
    };

    await t.test('the new copy fails its health checks: the previous app is back and serving', async () => {
      const before = await snapshotB(lab, credentials);
      const manifest = readFileSync(`${appDir}/app.yaml`, 'utf8');
      writeFileSync(
        `${appDir}/app.yaml`,
        manifest.replace('contains: Welcome to notes', 'contains: A text this page never shows'),
      );
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
      const blocker = spawn(
        process.execPath,
        [
          '-e',
          `require('net').createServer((s) => s.destroy()).listen(8081, ${JSON.stringify(lab.host('b').address)}, () => console.log('listening'))`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
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
      assert.equal(
        (
          await runOrThrow(
            b,
            `psql -X -At -d postgres -c "SELECT rolconnlimit FROM pg_authid WHERE rolname = 'notes_app'"`,
          )
        ).trim(),
        '-1',
        'the role as on the source',
      );
      assert.deepEqual(
        await findRunLeftovers(lab, 'b', report.runId).then((found) =>
          found.filter((line) => !line.startsWith('process')),
        ),
        [],
        'nothing set aside is left',
      );
      assert.deepEqual((await runOrThrow(b, `ls -A ${quoteWord(lab.host('b').appsRoot)}`)).trim().split('\n'), [
        'notes',
      ]);
    });

    await t.test(
      'deploy remove on a: refuses without --yes (nothing changes); with --yes the last archive is kept, process, database, role, folder and state are gone',
      async () => {
        const hostA = lab.host('a');
        const repo = `${hostA.stateDir}/borg/notes`;
        const sql = (query: string): Promise<string> =>
          runOrThrow(a, `psql -X -At -d postgres -c ${quoteWord(query)}`).then((out) => out.trim());
        const appProcesses = (): Promise<string> =>
          runOrThrow(
            a,
            `grep -lzx ${quoteWord(`DEPLOY_APP_DIR=${appDir}`)} /proc/[0-9]*/environ 2>/dev/null || true`,
          ).then((out) => out.trim());
        const borgList = (passphraseFile: string): Promise<string[]> =>
          runOrThrow(
            a,
            `BORG_REPO=${quoteWord(repo)} BORG_PASSCOMMAND=${quoteWord(`cat ${passphraseFile}`)} BORG_BASE_DIR=${quoteWord(`${hostA.stateDir}/borg-test`)} BORG_RELOCATED_REPO_ACCESS_IS_OK=yes borg list --short`,
          ).then((out) => out.trim().split('\n'));
        const archivesBefore = await borgList(`${appDir}/secrets/borg.pass`);
        assert.notEqual(await appProcesses(), '', 'notes runs on a');

        const refused = await deployOnA(lab, ['remove', 'notes']);
        assertExit(refused, 2, 'remove without --yes');
        assert.match(refused.stderr, /nothing was removed: .* needs --yes/);
        for (const shown of [
          appDir,
          'drop the postgres database notes',
          'drop role notes_app',
          `keep the Borg repository ${repo} (${archivesBefore.length} archive(s)`,
        ])
          assert.ok(refused.stdout.includes(shown), `the plan shows "${shown}":\n${refused.stdout}`);
        const planned = JSON.parse((await deployOnA(lab, ['remove', 'notes', '--plan', '--json'])).stdout) as {
          ok: boolean;
          removed: boolean;
          plan: {
            folder: { bytes: number };
            database: { name: string; action: string };
            roles: { name: string; action: string }[];
            repository: { archives: number };
          };
        };
        assert.equal(planned.removed, false);
        assert.ok(planned.plan.folder.bytes > 0);
        assert.deepEqual(
          [planned.plan.database.action, planned.plan.roles, planned.plan.repository.archives],
          ['drop', [{ name: 'notes_app', action: 'drop' }], archivesBefore.length],
        );
        // Nothing changed: still serving, database, role and folder there, no new archive.
        assert.equal((await new NotesClient(`http://${hostA.address}:8080`).get('/healthz')).status, 200);
        assert.equal(await sql(`SELECT count(*) FROM pg_database WHERE datname = 'notes'`), '1');
        assert.equal(await sql(`SELECT count(*) FROM pg_roles WHERE rolname = 'notes_app'`), '1');
        assert.deepEqual(await borgList(`${appDir}/secrets/borg.pass`), archivesBefore);

        const run = await deployOnA(lab, ['remove', 'notes', '--yes', '--json']);
        assertExit(run, 0, 'remove --yes');
        const report = JSON.parse(run.stdout) as {
          ok: boolean;
          runId: string;
          backup: { archive: string };
          databaseDropped: boolean;
          rolesDropped: string[];
          repository: string;
          record: string;
        };
        assert.deepEqual(
          [report.ok, report.databaseDropped, report.rolesDropped, report.repository],
          [true, true, ['notes_app'], 'kept'],
        );
        // The last archive is in the kept repository, readable with the passphrase kept in the record's folder copy.
        const archivesAfter = await borgList(`${report.record}/folder/secrets/borg.pass`);
        assert.deepEqual(archivesAfter, [...archivesBefore, report.backup.archive]);
        const dumped = await runOrThrow(
          a,
          `cd ${quoteWord(hostA.stateDir)} && BORG_REPO=${quoteWord(repo)} BORG_PASSCOMMAND=${quoteWord(`cat ${report.record}/folder/secrets/borg.pass`)} BORG_BASE_DIR=borg-test borg list ::${report.backup.archive} --short`,
        );
        assert.match(dumped, /data\/uploads/);
        assert.match(dumped, /db\/notes\.pgdump/);
        assert.equal(await appProcesses(), '', 'no process of notes is left');
        await assert.rejects(new NotesClient(`http://${hostA.address}:8080`).get('/healthz'));
        assert.equal(await sql(`SELECT count(*) FROM pg_database WHERE datname = 'notes'`), '0');
        assert.equal(await sql(`SELECT count(*) FROM pg_roles WHERE rolname = 'notes_app'`), '0');
        const left = (
          await runOrThrow(
            a,
            `cd ${quoteWord(hostA.stateDir)} && find apps locks -mindepth 1 2>/dev/null; ls -A ${quoteWord(hostA.appsRoot)}`,
          )
        ).trim();
        assert.equal(left, '', 'no folder, state, lock or leftover of notes is left');
        assert.ok(
          !existsSync(`${report.record}/folder/data/uploads`),
          'the folder copy holds no volume (they are in the archive)',
        );

        const again = await deployOnA(lab, ['remove', 'notes', '--yes']);
        assertExit(again, 3, 'second remove');
        assert.match(again.stderr, new RegExp(`notes is not on a: removed by run ${report.runId}`));
        assert.match(again.stderr, new RegExp(`backups are in ${repo}`));
      },
    );
  });
});
