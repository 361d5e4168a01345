// End to end: `deploy migrate` of the guestbook fixture (MariaDB, a password user with grants, one volume)
// between two lab hosts. Refusals first (no space on the target, a second migrate of the same app), then a
// run whose target-side run is killed mid-part (the source has it cleaned up there: target as before),
// then the re-run that carries the user, its password, its grants and every row, a second copy over
// the legacy scp file mode to a third host, and last the cutover to b of what a wrote since.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { quoteWord } from '@deploykit/core';
import { labShell, runOrThrow, treeFingerprint, diffTreeFingerprints, withLab } from './helpers/index.js';
import {
  GUESTBOOK_DIR,
  assertExit,
  deployOnA,
  countSessions,
  findRunLeftovers,
  isTargetRun,
  withoutVersionChecks,
  parseReport,
  readJournal,
  waitForProcess,
} from './migrate-lab.js';

const ENTRIES_SQL = 'SELECT id, author, message, created_at FROM guestbook.entries ORDER BY id';
const GRANTS_SQL = "SHOW GRANTS FOR 'guestbook_app'@'localhost'";

test('guestbook (MariaDB) migrate: refusals, target-side run killed mid-part, re-run with users, grants and rows, scp copy, cutover', {
  timeout: 720_000,
}, async (t) => {
  await withLab({ hosts: 3, mariadb: true, postgres: false }, async (lab) => {
    const a = labShell(lab, 'a');
    const b = labShell(lab, 'b');
    const hostA = lab.host('a');
    const hostB = lab.host('b');
    const appDir = `${hostA.appsRoot}/guestbook`;
    const mysql = (shell: typeof a, sql: string): Promise<string> =>
      runOrThrow(shell, 'mysql --batch --skip-column-names --raw', `${sql};\n`);
    const targetState = async (): Promise<{ apps: string[]; databases: string; users: string; locks: string[] }> => ({
      apps: readdirSync(hostB.appsRoot),
      databases: await mysql(b, "SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'guestbook'"),
      users: await mysql(b, "SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User = 'guestbook_app'"),
      locks: existsSync(`${hostB.stateDir}/locks`) ? readdirSync(`${hostB.stateDir}/locks`) : [],
    });
    const emptyTarget = { apps: [], databases: '', users: '', locks: [] };

    await t.test(
      'set up guestbook on host a: install, start, rows, an extra grant, a 160 MiB uploads volume',
      async () => {
        await runOrThrow(a, `cp -a ${quoteWord(GUESTBOOK_DIR)} ${quoteWord(appDir)}`);
        assertExit(await deployOnA(lab, ['install', 'guestbook']), 0, 'install guestbook');
        assertExit(await deployOnA(lab, ['start', 'guestbook']), 0, 'start guestbook');
        await mysql(
          a,
          "INSERT INTO guestbook.entries (author, message) VALUES ('zoë', 'Ünïcødé ✓ and a quote '' here'), ('bob', 'tab\\there')",
        );
        // A grant bin/install does not make: only the migration can bring it to host b.
        await mysql(
          a,
          "GRANT PROCESS ON *.* TO 'guestbook_app'@'localhost'; GRANT CREATE VIEW ON guestbook.* TO 'guestbook_app'@'localhost'; GRANT DELETE, SELECT (id) ON guestbook.entries TO 'guestbook_app'@'localhost'",
        );
        // A view and a trigger: the staging database is moved into place object by object, these too.
        await mysql(
          a,
          'CREATE VIEW guestbook.authors AS SELECT DISTINCT author FROM guestbook.entries; CREATE TRIGGER guestbook.entries_trim BEFORE INSERT ON guestbook.entries FOR EACH ROW SET NEW.author = TRIM(NEW.author)',
        );
        // Large enough that the volume stream is still running when the test stops its receiver.
        await runOrThrow(
          a,
          `cd ${quoteWord(`${appDir}/data/uploads`)} && head -c 160M /dev/urandom > big.bin && printf 'hello\\n' > small.txt && ln -s small.txt link && chmod 640 small.txt`,
        );
        assert.deepEqual(await targetState(), emptyTarget);
      },
    );

    await t.test(
      'a target without enough space is refused in preflight with both numbers; nothing changes',
      async () => {
        assertExit(await deployOnA(lab, ['backup', 'guestbook']), 0, 'backup guestbook');
        const listArchives = (): Promise<string> =>
          runOrThrow(
            a,
            `export BORG_REPO=${quoteWord(`${hostA.stateDir}/borg/guestbook`)} BORG_PASSCOMMAND="cat ${appDir}/secrets/borg.pass" BORG_BASE_DIR=${quoteWord(`${hostA.stateDir}/apps/guestbook/borg`)}; borg list --short`,
          );
        const archives = await listArchives();
        assert.equal(archives.trim().split('\n').length, 1);
        const fingerprint = await treeFingerprint(a, appDir, { mtime: true });
        await runOrThrow(b, `mount -t tmpfs -o size=16m deploykit-test-full ${quoteWord(hostB.appsRoot)}`);
        try {
          const run = await deployOnA(lab, ['migrate', 'guestbook', '--to', 'b']);
          assertExit(run, 6, 'migrate to a full target');
          const message = /b has ([\d.]+ \w+) free in (\S+), the app needs ([\d.]+ \w+)/.exec(run.stderr);
          assert.ok(message, `the refusal names both numbers:\n${run.stderr}`);
          assert.equal(message[1], '16.0 MiB');
          assert.equal(message[2], hostB.appsRoot);
          assert.ok(Number.parseFloat(message[3]!) >= 160, `needed ${message[3]} covers the 160 MiB volume`);
          assert.match(run.stderr, /Free space on the target or choose another target host/);
          assert.deepEqual(readdirSync(hostB.appsRoot), [], 'nothing written on the full target');
        } finally {
          await runOrThrow(b, `umount ${quoteWord(hostB.appsRoot)}`);
        }
        assert.deepEqual(await targetState(), emptyTarget);
        assert.equal(await listArchives(), archives, 'no backup was made on the source');
        assert.equal(existsSync(`${hostA.stateDir}/locks/guestbook.lock`), false);
        // The target refused from the bundle's header, before the source made a backup.
        const refusedRun = readdirSync(`${hostA.stateDir}/apps/guestbook/migrations`);
        assert.equal(refusedRun.length, 1);
        const record = await readJournal(`${hostA.stateDir}/apps/guestbook/migrations/${refusedRun[0]}`);
        assert.deepEqual(
          record.filter((line) => line.status === 'start').map((line) => line.step),
          ['lock', 'connect'],
          'refused at connect: no backup',
        );
        assert.deepEqual(diffTreeFingerprints(fingerprint, await treeFingerprint(a, appDir, { mtime: true })), []);
      },
    );

    let killedRunId = '';
    await t.test(
      'target-side run killed mid-part: a second migrate meanwhile is refused naming the holder; the target is left as before',
      async () => {
        const first = deployOnA(lab, [
          'migrate',
          'guestbook',
          '--to',
          'b',
          '--json',
          '--retries',
          '0',
          '--stall-seconds',
          '60',
        ]);
        const receiver = await waitForProcess(
          lab,
          (p) => p.host === 'b' && isTargetRun(p, 'guestbook'),
          180_000,
          'deploy receive guestbook on host b',
        );
        // Wait until it is inside the uploads part, then freeze it so the run holds its locks mid-part.
        const staging = (): string[] =>
          readdirSync(hostB.appsRoot).filter((name) => name.startsWith('.migrate-guestbook-'));
        const deadline = Date.now() + 120_000;
        while (
          !staging().some((name) => existsSync(`${hostB.appsRoot}/${name}/parts/volume-uploads`)) &&
          Date.now() < deadline
        )
          await new Promise((resolve) => setTimeout(resolve, 25));
        process.kill(receiver.pid, 'SIGSTOP');
        try {
          const holder = JSON.parse(
            await runOrThrow(a, `cat ${quoteWord(`${hostA.stateDir}/locks/guestbook.lock`)}`),
          ) as { runId: string; pid: number; host: string; command: string };
          killedRunId = holder.runId;
          assert.equal(holder.command, 'deploy migrate guestbook --to b');
          const second = await deployOnA(lab, ['migrate', 'guestbook', '--to', 'b', '--json']);
          assertExit(second, 7, 'second migrate while the first runs');
          const refused = parseReport(second);
          assert.equal(refused.ok, false);
          assert.equal(refused.failure?.step, 'lock');
          assert.equal(refused.failure?.code, 'APP_LOCKED');
          assert.match(
            refused.failure?.message ?? '',
            new RegExp(`locked by "deploy migrate guestbook --to b" \\(run ${holder.runId}, pid ${holder.pid} on a,`),
          );
          assert.equal(refused.targetReport, undefined, 'a refused run never reached the target');
          // The refused run did not disturb the holder's staging on b.
          assert.ok(staging().includes(`.migrate-guestbook-${holder.runId}`));
        } finally {
          process.kill(receiver.pid, 'SIGKILL');
        }
        const run = await first;
        assertExit(run, 5, 'migrate whose target-side run was killed');
        const report = parseReport(run);
        assert.equal(report.ok, false);
        assert.equal(report.runId, killedRunId);
        assert.equal(report.failure?.stage, 'transport');
        assert.match(report.failure?.message ?? '', /ended without a report|connection/);
        assert.equal(report.targetReport, undefined, 'the killed run could not report');
        // The source had it cleaned up on b right away (by run id): staging, the stale lock, its processes.
        assert.deepEqual(
          report.targetRecovery?.recovered.map((recovered) => recovered.runId),
          [killedRunId],
        );
        const journal = await readJournal(report.journal);
        assert.ok(
          journal.some((line) => line.status === 'failed' && line.step.startsWith('send:')),
          JSON.stringify(journal.filter((line) => line.status === 'failed')),
        );
        // Target as before: no folder, no staging, no database, no user, no lock, no process or temp dir of the run.
        assert.deepEqual(await targetState(), emptyTarget);
        assert.deepEqual(await findRunLeftovers(lab, 'b', killedRunId, { postgres: false, mariadb: true }), []);
        assert.deepEqual(await findRunLeftovers(lab, 'a', killedRunId, { postgres: false }), []);
        assert.equal(existsSync(`${hostA.stateDir}/locks/guestbook.lock`), false, 'the source lock was released');
      },
    );

    await t.test(
      're-run completes over one ssh session: user logs in with its password on b, same grants, identical rows and volume',
      async () => {
        await mysql(a, "INSERT INTO guestbook.entries (author, message) VALUES ('after', 'written between the runs')");
        const { result: run, sessions } = await countSessions(lab, 'b', () =>
          deployOnA(lab, ['migrate', 'guestbook', '--to', 'b', '--json']),
        );
        assertExit(run, 0, 're-run of migrate');
        assert.deepEqual(
          withoutVersionChecks(sessions).map((session) => isTargetRun(session, 'guestbook')),
          [true],
          'one ssh session carried the migration',
        );
        const report = parseReport(run);
        assert.equal(report.ok, true);
        assert.notEqual(report.runId, killedRunId);
        assert.deepEqual(
          report.parts.map((part) => part.id),
          ['files', 'volume:uploads', 'roles', 'database', 'grants'],
        );
        assert.ok(report.parts[1]!.bytes >= 160 * 1024 * 1024, 'the whole volume moved');
        assert.equal(report.targetReport?.verification.ok, true, JSON.stringify(report.targetReport?.verification));
        assert.ok(report.targetReport?.verification.checks.some((c) => c.name === 'health entries page' && c.ok));

        assert.equal(await mysql(b, ENTRIES_SQL), await mysql(a, ENTRIES_SQL));
        assert.equal((await mysql(b, ENTRIES_SQL)).split('\n').filter(Boolean).length, 4);
        const grantsA = (await mysql(a, GRANTS_SQL)).split('\n').filter(Boolean).sort();
        const grantsB = (await mysql(b, GRANTS_SQL)).split('\n').filter(Boolean).sort();
        assert.deepEqual(grantsB, grantsA);
        assert.ok(
          grantsB.some((line) => line.startsWith('GRANT PROCESS ON *.*')),
          grantsB.join('\n'),
        );
        // A table-level grant names a table that exists only after the restore: it must still arrive.
        assert.ok(
          grantsB.some((line) => /ON `guestbook`\.`entries` TO/.test(line)),
          grantsB.join('\n'),
        );
        assert.ok(
          grantsB.some((line) => /CREATE VIEW ON `guestbook`\.\*/.test(line)),
          grantsB.join('\n'),
        );

        // The app's own user logs in on b with the password from its (migrated) secrets, and only with it.
        const password = (
          await runOrThrow(b, `sed -n 's/^DB_PASSWORD=//p' ${quoteWord(`${hostB.appsRoot}/guestbook/secrets/app.env`)}`)
        ).trim();
        assert.ok(password.length >= 20);
        const asApp = (pw: string): Promise<{ exitCode: number; stdout: string; stderr: string }> =>
          b.run(
            `MYSQL_PWD=${quoteWord(pw)} mysql --batch --skip-column-names -u guestbook_app -e 'SELECT COUNT(*) FROM guestbook.entries; SELECT CURRENT_USER()'`,
          );
        const login = await asApp(password);
        assert.equal(login.exitCode, 0, login.stderr);
        assert.deepEqual(login.stdout.trim().split('\n'), ['4', 'guestbook_app@localhost']);
        const wrong = await asApp(`${password}x`);
        assert.notEqual(wrong.exitCode, 0);
        assert.match(wrong.stderr, /Access denied/);

        const page = await fetch(`http://${hostB.address}:8090/entries`);
        assert.equal(page.status, 200);
        assert.match(await page.text(), /first entry[\s\S]*Ünïcødé ✓[\s\S]*written between the runs/);
        assert.deepEqual(
          diffTreeFingerprints(
            await treeFingerprint(a, `${appDir}/data/uploads`),
            await treeFingerprint(b, `${hostB.appsRoot}/guestbook/data/uploads`),
          ),
          [],
        );
        assert.deepEqual(readdirSync(hostB.appsRoot), ['guestbook'], 'no staging left after success');
        // The view and the trigger made it through the staging database.
        assert.equal(
          await mysql(b, 'SELECT COUNT(*) FROM guestbook.authors'),
          await mysql(a, 'SELECT COUNT(*) FROM guestbook.authors'),
        );
        await mysql(b, "INSERT INTO guestbook.entries (author, message) VALUES ('  padded  ', 'trigger check')");
        assert.equal(
          (
            await mysql(b, "SELECT CONCAT('[', author, ']') FROM guestbook.entries WHERE message = 'trigger check'")
          ).trim(),
          '[padded]',
        );
        assert.equal(
          (await mysql(b, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'dk\\_%'")).trim(),
          '0',
          'no staging schema left',
        );
      },
    );

    await t.test(
      'over the legacy scp file mode to c: same rows, user and grants; the staged bytes are reported',
      async () => {
        const c = labShell(lab, 'c');
        const run = await deployOnA(lab, ['migrate', 'guestbook', '--to', 'c', '--transport', 'scp', '--json']);
        assertExit(run, 0, 'migrate over scp');
        const report = parseReport(run);
        assert.equal(report.targetReport?.verification.ok, true, JSON.stringify(report.targetReport?.verification));
        assert.ok(report.stagedBytes >= 160 * 1024 * 1024, `staged ${report.stagedBytes} bytes`);
        assert.equal(await mysql(c, ENTRIES_SQL), await mysql(a, ENTRIES_SQL));
        assert.deepEqual(
          (await mysql(c, GRANTS_SQL)).split('\n').filter(Boolean).sort(),
          (await mysql(a, GRANTS_SQL)).split('\n').filter(Boolean).sort(),
        );
        assert.deepEqual(
          await findRunLeftovers(lab, 'c', report.runId, { postgres: false, mariadb: true }).then((found) =>
            found.filter((line) => !line.startsWith('process')),
          ),
          [],
        );
        assert.deepEqual(
          await findRunLeftovers(lab, 'a', report.runId, { postgres: false }),
          [],
          'the staged file on the source is gone',
        );
      },
    );

    await t.test(
      'over the local transport to c again, replacing the copy there: the replaced database was kept aside as a dump and dropped after',
      async () => {
        const c = labShell(lab, 'c');
        await mysql(c, "INSERT INTO guestbook.entries (author, message) VALUES ('only on c', 'replaced')");
        await mysql(a, "INSERT INTO guestbook.entries (author, message) VALUES ('local', 'over the local transport')");
        const run = await deployOnA(lab, [
          'migrate',
          'guestbook',
          '--to',
          'c',
          '--transport',
          'local',
          '--replace',
          '--json',
        ]);
        assertExit(run, 0, 'migrate over local with --replace');
        const report = parseReport(run);
        assert.equal(report.transport, 'local');
        assert.equal(report.targetReport?.verification.ok, true, JSON.stringify(report.targetReport?.verification));
        assert.equal(await mysql(c, ENTRIES_SQL), await mysql(a, ENTRIES_SQL));
        assert.doesNotMatch(await mysql(c, ENTRIES_SQL), /only on c/);
        assert.deepEqual(
          (await mysql(c, GRANTS_SQL)).split('\n').filter(Boolean).sort(),
          (await mysql(a, GRANTS_SQL)).split('\n').filter(Boolean).sort(),
        );
        assert.deepEqual(
          await findRunLeftovers(lab, 'c', report.runId, { postgres: false, mariadb: true }).then((found) =>
            found.filter((line) => !line.startsWith('process')),
          ),
          [],
        );
      },
    );

    await t.test(
      'cutover to b (no bin/maintenance: bin/stop): the rows and files written on a since reach b, the 160 MiB file is not sent again',
      async () => {
        await mysql(
          a,
          "INSERT INTO guestbook.entries (author, message) VALUES ('cutover', 'written after the migration to b')",
        );
        await mysql(a, "GRANT INSERT ON guestbook.entries TO 'guestbook_app'@'localhost'");
        // A new nested directory, a re-pointed symlink, a removed file.
        await runOrThrow(
          a,
          `cd ${quoteWord(`${appDir}/data/uploads`)} && mkdir -p 2026/12 && printf 'nested\\n' > 2026/12/new.txt && printf 'other\\n' > other.txt && ln -sfn other.txt link && rm small.txt`,
        );
        const run = await deployOnA(lab, ['cutover', 'guestbook', '--to', 'b', '--json']);
        assertExit(run, 0, 'cutover of guestbook');
        const report = parseReport(run) as ReturnType<typeof parseReport> & {
          cutover?: {
            stoppedWith: string;
            deltaBytes: number;
            writeStopMs?: number;
            volumes: Record<string, { added: number; changed: number; removed: number; metadata: number }>;
          };
        };
        assert.equal(report.cutover?.stoppedWith, 'stop');
        assert.ok(
          (report.cutover?.deltaBytes ?? Infinity) < 1024 * 1024,
          `the delta is ${report.cutover?.deltaBytes} bytes, not the 160 MiB volume`,
        );
        const counts = report.cutover!.volumes.uploads!;
        // Added: 2026, 2026/12, 2026/12/new.txt, other.txt; removed: small.txt; link re-pointed (sent again).
        assert.deepEqual(
          { added: counts.added, removed: counts.removed },
          { added: 4, removed: 1 },
          JSON.stringify(counts),
        );
        assert.ok(report.cutover?.writeStopMs !== undefined);
        assert.equal(await mysql(b, ENTRIES_SQL), await mysql(a, ENTRIES_SQL));
        assert.match(await mysql(b, ENTRIES_SQL), /written after the migration to b/);
        assert.deepEqual(
          (await mysql(b, GRANTS_SQL)).split('\n').filter(Boolean).sort(),
          (await mysql(a, GRANTS_SQL)).split('\n').filter(Boolean).sort(),
        );
        assert.deepEqual(
          diffTreeFingerprints(
            await treeFingerprint(a, `${appDir}/data/uploads`),
            await treeFingerprint(b, `${hostB.appsRoot}/guestbook/data/uploads`),
          ),
          [],
        );
        const page = await fetch(`http://${hostB.address}:8090/entries`);
        assert.match(await page.text(), /written after the migration to b/);
        assert.deepEqual(
          await findRunLeftovers(lab, 'b', report.runId, { postgres: false, mariadb: true }).then((found) =>
            found.filter((line) => !line.startsWith('process')),
          ),
          [],
        );
      },
    );
  });
});
