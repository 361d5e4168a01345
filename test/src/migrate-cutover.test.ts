// End to end: the two-phase move of the notes app (PostgreSQL) between two lab hosts. `deploy migrate`
// copies it while it serves on a; a keeps taking writes (an upload, a changed, a deleted and a renamed
// file, a changed xattr and mode, new and updated rows, a new grant). A cutover whose target copy fails
// its health checks leaves a serving again and b exactly as the migration left it; `deploy cutover`
// then stops writes on a (maintenance page), sends only what changed and the database, and b serves
// every one of those writes; a is marked as moved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { quoteWord } from '@deploykit/core';
import {
  NotesClient,
  dbFingerprint,
  diffTreeFingerprints,
  labShell,
  parseCredentials,
  runOrThrow,
  treeFingerprint,
  withLab,
} from './helpers/index.js';
import { assertExit, deployOnA, findRunLeftovers, parseReport, type MigrateReportJson } from './migrate-lab.js';

interface CutoverJson extends MigrateReportJson {
  durationMs: number;
  cutover?: {
    baseArchive: string;
    stoppedWith: string;
    writeStopMs?: number;
    deltaBytes: number;
    databaseBytes: number;
    volumes: Record<string, { added: number; changed: number; removed: number; metadata: number; bytes: number }>;
    sourceResumed?: boolean;
    moved?: boolean;
  };
}

const NOTES_SQL = 'SELECT id, title, body FROM notes ORDER BY id';
const ACL_SQL = "SELECT relname, relacl::text FROM pg_class WHERE relname = 'notes'";

test('cutover: writes after the migration reach the target; a failing target leaves the source serving', {
  timeout: 600_000,
}, async (t) => {
  await withLab({ hosts: 2 }, async (lab) => {
    const a = labShell(lab, 'a');
    const b = labShell(lab, 'b');
    /** Every xattr and ACL under dir, as getfattr dumps them (what the cutover must carry exactly). */
    const xattrDump = (shell: typeof a, dir: string): Promise<string> =>
      runOrThrow(shell, `cd ${quoteWord(dir)} && getfattr -R -d -m - -h -e base64 . 2>/dev/null || true`);
    const appDir = `${lab.host('a').appsRoot}/notes`;
    const appDirB = `${lab.host('b').appsRoot}/notes`;
    const uploads = `${appDir}/data/uploads`;
    const uploadsB = `${appDirB}/data/uploads`;
    const psql = (shell: typeof a, sql: string): Promise<string> =>
      runOrThrow(shell, `psql -X -At -d notes -c ${quoteWord(sql)}`);
    let credentials = { username: '', password: '' };
    const onA = (): NotesClient => new NotesClient(`http://${lab.host('a').address}:8080`);
    const onB = (): NotesClient => new NotesClient(`http://${lab.host('b').address}:8080`);

    await t.test('set up: notes on a with uploads (one with an xattr), migrated to b while it serves', async () => {
      assertExit(await deployOnA(lab, ['init', 'notes']), 0, 'init');
      assertExit(await deployOnA(lab, ['install', 'notes']), 0, 'install');
      assertExit(await deployOnA(lab, ['start', 'notes']), 0, 'start');
      credentials = parseCredentials(await runOrThrow(a, `cat ${quoteWord(`${appDir}/secrets/admin.credentials`)}`));
      const client = onA();
      await client.login(credentials.username, credentials.password);
      await client.addNote('before the migration', 'one');
      await client.addNote('updated later', 'old body');
      await runOrThrow(
        a,
        `cd ${quoteWord(uploads)} && printf 'keep\\n' > keep.txt && printf 'change me\\n' > change.txt && printf 'delete me\\n' > delete.txt && printf 'rename me\\n' > old-name.txt && setfattr -n user.tag -v before keep.txt && setfattr -n user.dropped -v later keep.txt && setfacl -m u:65534:r keep.txt && chmod 644 keep.txt`,
      );
      assertExit(await deployOnA(lab, ['migrate', 'notes', '--to', 'b']), 0, 'migrate');
    });

    await t.test('between migrate and cutover: a keeps taking writes', async () => {
      const client = onA();
      await client.login(credentials.username, credentials.password);
      await client.upload('new-upload.bin', 'an upload after the migration');
      await client.addNote('after the migration', 'two');
      await psql(a, "UPDATE notes SET body = 'new body' WHERE title = 'updated later'");
      await runOrThrow(
        a,
        `cd ${quoteWord(uploads)} && printf 'changed content, longer than before\\n' > change.txt && rm delete.txt && mv old-name.txt new-name.txt && setfattr -n user.tag -v after keep.txt && setfattr -x user.dropped keep.txt && setfacl -b keep.txt && chmod 600 keep.txt`,
      );
      await runOrThrow(a, `psql -X -q -d notes -c "GRANT SELECT ON TABLE notes TO PUBLIC"`);
    });

    await t.test(
      'refusals: no finished migration to that host; a transport without a session; a same-size rewrite on b (by its mtime)',
      async () => {
        const none = await deployOnA(lab, ['cutover', 'notes', '--to', 'a']);
        assert.notEqual(none.exitCode, 0);
        const scp = await deployOnA(lab, ['cutover', 'notes', '--to', 'b', '--transport', 'scp']);
        assertExit(scp, 2, 'cutover over scp');
        assert.match(scp.stderr, /needs a session with the target/);
        // A same-size rewrite on b since the migration: seen by its mtime, refused before a stops writes.
        const file = `${uploadsB}/delete.txt`;
        const mtime = (await runOrThrow(b, `stat -c %.9Y ${quoteWord(file)}`)).trim();
        await runOrThrow(b, `printf 'DELETE ME\n' > ${quoteWord(file)}`);
        const changed = await deployOnA(lab, ['cutover', 'notes', '--to', 'b']);
        assertExit(changed, 7, 'cutover onto a copy written on b');
        assert.match(changed.stderr, /delete\.txt: modified here at /);
        assert.notEqual((await onA().get('/')).status, 503, 'a never stopped taking writes');
        await runOrThrow(b, `printf 'delete me\n' > ${quoteWord(file)} && touch -m -d @${mtime} ${quoteWord(file)}`);
      },
    );

    await t.test(
      'the target copy fails its health checks: b rolls back to the migrated copy, a serves again',
      async () => {
        const beforeFiles = await treeFingerprint(b, uploadsB, { mtime: true });
        const beforeXattrs = await xattrDump(b, uploadsB);
        assert.match(beforeXattrs, /user\.dropped/, 'b has the xattr a drops later');
        assert.match(beforeXattrs, /posix_acl_access/, 'and the ACL');
        const beforeDb = await psql(b, NOTES_SQL);
        const manifest = readFileSync(`${appDirB}/app.yaml`, 'utf8');
        writeFileSync(
          `${appDirB}/app.yaml`,
          manifest.replace('contains: Welcome to notes', 'contains: A text this page never shows'),
        );
        try {
          const run = await deployOnA(lab, ['cutover', 'notes', '--to', 'b', '--json']);
          assertExit(run, 4, 'cutover to an unhealthy target');
          const report = parseReport(run) as CutoverJson;
          assert.equal(report.failure?.code, 'TARGET_UNHEALTHY');
          assert.equal(report.cutover?.sourceResumed, true, 'a serves again');
          assert.ok((report.cutover?.writeStopMs ?? 0) > 0, 'the write-stop window is reported');
          assert.deepEqual(report.targetReport?.rollbackFailed, []);
          assert.deepEqual(
            diffTreeFingerprints(beforeFiles, await treeFingerprint(b, uploadsB, { mtime: true })),
            [],
            'b has the migrated uploads again, byte for byte, every modification time too',
          );
          assert.equal(await xattrDump(b, uploadsB), beforeXattrs, 'b has the migrated xattrs and ACLs again');
          assert.equal(await psql(b, NOTES_SQL), beforeDb, 'b has the migrated rows again');
          assert.deepEqual(
            await findRunLeftovers(lab, 'b', report.runId),
            [],
            'nothing of the failed cutover is left on b',
          );
          const health = JSON.parse((await onA().get('/healthz')).body.toString('utf8')) as { maintenance: boolean };
          assert.equal(health.maintenance, false, 'a is out of maintenance');
          assert.notEqual((await onA().get('/')).status, 503);
          assertExit(await deployOnA(lab, ['list']), 0, 'list');
          assert.doesNotMatch((await deployOnA(lab, ['list'])).stdout, /moved/);
        } finally {
          writeFileSync(`${appDirB}/app.yaml`, manifest);
        }
      },
    );

    await t.test(
      'cutover: every write since the migration is on b, the deleted file is gone, the window and the bytes are reported',
      async () => {
        const run = await deployOnA(lab, ['cutover', 'notes', '--to', 'b', '--json']);
        assertExit(run, 0, 'cutover');
        const report = parseReport(run) as CutoverJson;
        const cutover = report.cutover!;
        assert.equal(cutover.stoppedWith, 'maintenance');
        assert.equal(cutover.moved, true);
        assert.ok(
          cutover.writeStopMs !== undefined && cutover.writeStopMs > 0 && cutover.writeStopMs < report.durationMs,
          `window ${cutover.writeStopMs} ms of ${report.durationMs} ms`,
        );
        // uploads: new-upload.bin and new-name.txt added, change.txt changed, delete.txt and old-name.txt removed, keep.txt metadata only.
        const delta = cutover.volumes.uploads!;
        assert.deepEqual(
          { added: delta.added, changed: delta.changed, removed: delta.removed },
          { added: 2, changed: 1, removed: 2 },
          JSON.stringify(delta),
        );
        assert.ok(delta.metadata >= 1, 'keep.txt: mode and xattr');
        assert.ok(cutover.deltaBytes > 0 && cutover.deltaBytes < 1024 * 1024, `delta ${cutover.deltaBytes} bytes`);
        assert.ok(cutover.databaseBytes > 0);
        // Files: the same tree on both hosts (content, modes, xattrs), the deleted and renamed-away names gone.
        assert.deepEqual(
          diffTreeFingerprints(await treeFingerprint(a, uploads), await treeFingerprint(b, uploadsB)),
          [],
        );
        const listing = await runOrThrow(b, `cd ${quoteWord(uploadsB)} && find . -type f | sort`);
        assert.doesNotMatch(listing, /delete\.txt|old-name\.txt/);
        assert.match(listing, /new-name\.txt/);
        assert.equal(
          (await runOrThrow(b, `getfattr -n user.tag --only-values ${quoteWord(`${uploadsB}/keep.txt`)}`)).trim(),
          'after',
        );
        // Exactly a's xattrs and ACLs: the tag and the ACL a dropped from keep.txt are gone on b too.
        assert.equal(await xattrDump(b, uploadsB), await xattrDump(a, uploads));
        assert.doesNotMatch(await xattrDump(b, uploadsB), /user\.dropped|posix_acl/);
        assert.equal((await runOrThrow(b, `stat -c %a ${quoteWord(`${uploadsB}/keep.txt`)}`)).trim(), '600');
        // Database: rows and the grant as on a (a takes no writes now: it is in maintenance).
        assert.equal(await psql(b, NOTES_SQL), await psql(a, NOTES_SQL));
        assert.match(await psql(b, NOTES_SQL), /new body/);
        assert.match(await psql(b, NOTES_SQL), /after the migration/);
        assert.equal(await psql(b, ACL_SQL), await psql(a, ACL_SQL));
        assert.match(await psql(b, ACL_SQL), /=r\//, 'the grant to PUBLIC');
        assert.deepEqual(
          (await dbFingerprint(b, 'notes')).tables['public.notes'],
          (await dbFingerprint(a, 'notes')).tables['public.notes'],
        );
        // b serves it; a shows its maintenance page and refuses to start as a second copy.
        const client = onB();
        await client.login(credentials.username, credentials.password);
        assert.match((await client.get('/notes')).body.toString('utf8'), /after the migration/);
        assert.equal((await client.get('/uploads/new-upload.bin')).status, 200);
        assert.equal((await onA().get('/')).status, 503);
        assert.match((await deployOnA(lab, ['list'])).stdout, /moved to b/);
        const start = await deployOnA(lab, ['start', 'notes']);
        assertExit(start, 7, 'start of a moved app');
        assert.match(start.stderr, /cut over to b/);
        const again = await deployOnA(lab, ['cutover', 'notes', '--to', 'b']);
        assert.notEqual(again.exitCode, 0);
        assert.match(again.stderr, /already/);
        // The app the cutover started on b runs on (its processes carry the run id); nothing else of the run is left.
        assert.deepEqual(
          (await findRunLeftovers(lab, 'b', report.runId)).filter((line) => !line.startsWith('process')),
          [],
          'nothing of the cutover run is left on b',
        );
        assert.deepEqual(await findRunLeftovers(lab, 'a', report.runId), [], 'nor on a');
      },
    );
  });
});
