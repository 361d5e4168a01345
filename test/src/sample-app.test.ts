// End to end: the notes sample app on a real lab host (sshd, PostgreSQL 15, borg), driven only through the built
// `deploy` CLI with --host, used over HTTP, backed up, damaged and restored; volumes must come back byte-identical
// (content, modes, owners, symlinks, hard links, mtimes) and the database row-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { quoteWord } from '@deploykit/core';
import {
  NotesClient,
  dbFingerprint,
  diffTreeFingerprints,
  labShell,
  parseCredentials,
  runDeploy,
  runOrThrow,
  treeFingerprint,
  withLab,
  type DeployRun,
  type TreeFingerprint,
} from './helpers/index.js';

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Asserts a deploy run's exit code, showing its output when it differs. */
function assertExit(run: DeployRun, expected: number, what: string): void {
  assert.equal(
    run.exitCode,
    expected,
    `${what}: exit ${run.exitCode}, expected ${expected}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`,
  );
}

test('notes sample app on lab host a: init, install, start, use, backup, damage, restore to identical volumes and database', {
  timeout: 240_000,
}, async (t) => {
  await withLab({ hosts: 2 }, async (lab) => {
    const hostA = lab.host('a');
    const shell = labShell(lab, 'a');
    const appDir = `${hostA.appsRoot}/notes`;
    const uploads = `${appDir}/data/uploads`;
    const logs = `${appDir}/data/logs`;
    const deploy = (...args: string[]): Promise<DeployRun> =>
      runDeploy(['--config', lab.deployConfigPath, '--host', 'a', ...args]);
    const baseUrl = `http://${hostA.address}:8080`;

    await t.test('deploy init copies the sample app into the apps root of host a', async () => {
      const run = await deploy('init', 'notes');
      assert.match(run.stdout, new RegExp(`created ${appDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} from `));
      await runOrThrow(
        shell,
        `test -f ${quoteWord(`${appDir}/app.yaml`)} && test -x ${quoteWord(`${appDir}/bin/install`)}`,
      );
      // The sample app's secrets are made by bin/install, so a fresh init is a valid, installable folder.
      assertExit(run, 0, 'deploy init notes');
    });

    await t.test(
      'deploy install generates the secrets (0600) and prepares the database; start brings it up',
      async () => {
        assertExit(await deploy('install', 'notes'), 0, 'deploy install notes');
        const modes = await runOrThrow(
          shell,
          `cd ${quoteWord(appDir)} && stat -c '%n %a' secrets secrets/app.env secrets/admin.credentials secrets/borg.pass`,
        );
        assert.deepEqual(modes.trim().split('\n'), [
          'secrets 700',
          'secrets/app.env 600',
          'secrets/admin.credentials 600',
          'secrets/borg.pass 600',
        ]);
        assertExit(await deploy('start', 'notes'), 0, 'deploy start notes');
        const healthz = await fetch(`${baseUrl}/healthz`);
        assert.equal(healthz.status, 200);
        assert.match(await healthz.text(), /"status":"ok"/);
      },
    );

    await t.test('deploy list, validate and show --json describe the app on host a', async () => {
      const list = await deploy('list', '--json');
      assertExit(list, 0, 'deploy list --json');
      const listed = JSON.parse(list.stdout) as {
        root: string;
        apps: {
          name: string;
          dir: string;
          valid: boolean;
          runtime: string;
          database: string;
          volumes: string[];
          errors: string[];
        }[];
      };
      assert.equal(listed.root, hostA.appsRoot);
      assert.deepEqual(listed.apps, [
        {
          name: 'notes',
          dir: appDir,
          valid: true,
          runtime: 'process',
          database: 'postgres',
          volumes: ['uploads', 'logs'],
          errors: [],
          movedTo: null,
        },
      ]);

      const validate = await deploy('validate', '--json');
      assertExit(validate, 0, 'deploy validate --json');
      const validated = JSON.parse(validate.stdout) as {
        ok: boolean;
        apps: { app: string; dir: string; status: string; errors: unknown[] }[];
      };
      assert.equal(validated.ok, true);
      assert.deepEqual(
        validated.apps.map((a) => [a.app, a.dir, a.status, a.errors.length]),
        [['notes', appDir, 'ok', 0]],
      );

      const show = await deploy('show', 'notes', '--json');
      assertExit(show, 0, 'deploy show notes --json');
      const shown = JSON.parse(show.stdout) as {
        name: string;
        dir: string;
        manifestPath: string;
        borgRepository: string;
        manifest: Record<string, unknown>;
      };
      assert.equal(shown.name, 'notes');
      assert.equal(shown.dir, appDir);
      assert.equal(shown.manifestPath, `${appDir}/app.yaml`);
      assert.equal(shown.borgRepository, `${hostA.stateDir}/borg/notes`);
      assert.equal(shown.manifest.port, 8080);
      assert.deepEqual(shown.manifest.database, { kind: 'postgres', name: 'notes', roles: ['notes_app'] });
      assert.deepEqual(shown.manifest.volumes, [
        { name: 'uploads', path: 'data/uploads', special_files: [], target_writes: 'refuse' },
        { name: 'logs', path: 'data/logs', special_files: [], target_writes: 'discard' },
      ]);
      assert.deepEqual(shown.manifest.secrets, ['secrets/app.env', 'secrets/admin.credentials', 'secrets/borg.pass']);
    });

    const report = randomBytes(300_000);
    let before:
      | { uploads: TreeFingerprint; logs: TreeFingerprint; db: Awaited<ReturnType<typeof dbFingerprint>> }
      | undefined;
    let credentials: { username: string; password: string } | undefined;

    await t.test(
      'use the app over HTTP: log in, add notes, upload files; then odd entries straight into the volume',
      async () => {
        credentials = parseCredentials(
          await runOrThrow(shell, `cat ${quoteWord(`${appDir}/secrets/admin.credentials`)}`),
        );
        const client = new NotesClient(baseUrl);
        await client.login(credentials.username, credentials.password);
        await client.addNote('Shopping list', 'milk, eggs');
        await client.addNote('Ünïcødé title ✓', 'quotes \' " and a\ttab');
        assert.deepEqual(await client.upload('report.bin', report), {
          name: 'report.bin',
          bytes: report.length,
          url: '/uploads/report.bin',
        });
        await client.upload('Odd_Name-v2.final.tar.gz', 'odd but allowed\n');
        await client.upload('empty.txt', '');
        await assert.rejects(client.upload('../escape.txt', 'no'), /HTTP 400/);
        const served = await client.get('/uploads/report.bin');
        assert.equal(served.status, 200);
        assert.equal(sha256(served.body), sha256(report));
        const page = await client.get('/notes');
        assert.match(page.body.toString('utf8'), /Shopping list/);
        // What the app cannot make itself: links, odd names, other owners and modes, set on the volume directly.
        await runOrThrow(
          shell,
          [
            `cd ${quoteWord(uploads)}`,
            'ln -s report.bin latest',
            'ln -s ../logs dangling-looking-link',
            'ln report.bin report-hardlink.bin',
            "printf 'private\\n' > private.txt && chmod 0640 private.txt && chown 4321:4322 private.txt",
            "printf 'odd\\n' > $'odd name\\twith tab, newline\\n and ünï.txt'",
            'mkdir -m 2750 shared && chown 4321:4322 shared && printf x > shared/inner.txt && ln shared/inner.txt inner-hardlink.txt',
          ].join(' && '),
        );
        const fingerprint = await treeFingerprint(shell, uploads, { mtime: true });
        const byPath = new Map(fingerprint.entries.map((entry) => [entry.path, entry]));
        assert.equal(byPath.get('report.bin')?.sha256, sha256(report));
        assert.deepEqual(byPath.get('report.bin')?.hardLinks, ['report-hardlink.bin', 'report.bin']);
        assert.equal(byPath.get('latest')?.target, 'report.bin');
        assert.deepEqual(
          [byPath.get('private.txt')?.mode, byPath.get('private.txt')?.uid, byPath.get('private.txt')?.gid],
          ['640', 4321, 4322],
        );
        assert.equal(byPath.get('shared')?.mode, '2750');
        assert.ok(byPath.has('odd name\twith tab, newline\n and ünï.txt'), 'the odd file name is listed exactly');
      },
    );

    await t.test(
      'deploy backup (app stopped, so the logs volume is still), after fingerprinting volumes and database',
      async () => {
        assertExit(await deploy('stop', 'notes'), 0, 'deploy stop notes');
        before = {
          uploads: await treeFingerprint(shell, uploads, { mtime: true }),
          logs: await treeFingerprint(shell, logs, { mtime: true }),
          db: await dbFingerprint(shell, 'notes'),
        };
        assert.ok(
          before.logs.entries.some((entry) => entry.path === 'access.log' && (entry.size ?? 0) > 0),
          'the app wrote its access log',
        );
        assert.equal(before.db.tables['public.notes']?.rows, 3, 'the welcome note and the two added');
        const backup = await deploy('backup', 'notes', '--json');
        assertExit(backup, 0, 'deploy backup notes');
        const summary = JSON.parse(backup.stdout) as {
          ok: number;
          failed: number;
          results: { app: string; status: string; archive?: string }[];
        };
        assert.equal(summary.ok, 1);
        assert.match(summary.results[0]?.archive ?? '', /^notes-\d{4}-?\d{2}-?\d{2}T/);
      },
    );

    await t.test('damage, then deploy restore brings back identical volumes and database; health passes', async () => {
      assert.ok(before && credentials, 'the earlier steps produced fingerprints and credentials');
      await runOrThrow(
        shell,
        [
          `cd ${quoteWord(uploads)}`,
          'rm report.bin latest',
          'chmod 0600 private.txt',
          'chown 0:0 shared',
          "printf 'tampered\\n' > Odd_Name-v2.final.tar.gz",
          "printf 'new junk\\n' > junk.txt",
          `printf 'x\\n' >> ${quoteWord(`${logs}/access.log`)}`,
        ].join(' && '),
      );
      await runOrThrow(
        shell,
        'psql -X -q -v ON_ERROR_STOP=1 -d notes',
        "UPDATE users SET password_hash = 'scrypt$1$1$1$AA==$AA==' WHERE username = 'admin';\nDROP TABLE notes;\n",
      );
      // The damage is visible to the fingerprints, so identical results after the restore mean something.
      const damagedUploads = diffTreeFingerprints(
        before.uploads,
        await treeFingerprint(shell, uploads, { mtime: true }),
      );
      assert.ok(
        damagedUploads.some((line) => line === '- report.bin') && damagedUploads.some((line) => line === '+ junk.txt'),
        damagedUploads.join('\n'),
      );
      const damagedDb = await dbFingerprint(shell, 'notes');
      assert.equal(damagedDb.tables['public.notes'], undefined);
      assert.notDeepEqual(damagedDb, before.db);

      const restore = await deploy('restore', 'notes');
      assertExit(restore, 0, 'deploy restore notes');
      const after = {
        uploads: await treeFingerprint(shell, uploads, { mtime: true }),
        logs: await treeFingerprint(shell, logs, { mtime: true }),
        db: await dbFingerprint(shell, 'notes'),
      };
      assert.deepEqual(diffTreeFingerprints(before.uploads, after.uploads), [], 'uploads volume differs after restore');
      assert.deepEqual(diffTreeFingerprints(before.logs, after.logs), [], 'logs volume differs after restore');
      assert.deepEqual(after.uploads.entries, before.uploads.entries);
      assert.deepEqual(after.db, before.db);

      assertExit(await deploy('start', 'notes'), 0, 'deploy start notes');
      const health = await deploy('health', 'notes', '--json');
      assertExit(health, 0, 'deploy health notes');
      const checks = JSON.parse(health.stdout) as { ok: boolean; checks: { name: string; status: string }[] };
      assert.equal(checks.ok, true);
      assert.deepEqual(
        checks.checks.filter((check) => check.status === 'failed'),
        [],
      );
      assert.equal(
        checks.checks.find((check) => check.name === 'uploads')?.status,
        'ok',
        'the uploads check sampled real files',
      );
      // The restored password hash lets the admin in again, and the dropped notes are back.
      const client = new NotesClient(baseUrl);
      await client.login(credentials.username, credentials.password);
      const page = (await client.get('/notes')).body.toString('utf8');
      assert.match(page, /Shopping list/);
      assert.match(page, /Ünïcødé title ✓/);
      assert.equal(sha256((await client.get('/uploads/report.bin')).body), sha256(report));
    });
  });
});
