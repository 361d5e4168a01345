// End to end: `deploy migrate` of the notes sample app from lab host a to b (ssh), c (ffl through the
// stand-in), d (scp, with the Borg history) and b again over the local transport (--replace). Each target
// must serve the app (static files, DB pages, login) with byte-identical uploads and an identical database.
// The ssh run is carried by one ssh session, carries what borg export-tar drops (xattrs, an ACL, a 2050
// mtime, a sparse file) and is compared with its --plan on both hosts; the ffl run is watched for secrets
// in process lists, logs, events, report and both run records. Every target gets the PostgreSQL catalog
// state pg_dump alone loses (role settings, expiry, comment, extension owner, explicit ACLs), compared
// field by field; the one difference allowed is the one --plan names (hstore, in its own schema, arrives
// owned by the target's admin).
// With keep_archives: 2, the fourth migration prunes the first one's archive on a and keeps the app's
// own backup and c's (the newest finished there).
// The hosts run the installed release (npm run release's tarball, built fresh, `npm install -g` into
// each host's own prefix: lab `release`), not the repo: every command of both sides runs from the bundle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { displayArgv, quoteWord } from '@deploykit/core';
import { POSTGRES_FIDELITY_SQL } from '@deploykit/deploy';
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
  withReleases,
  type Shell,
} from './helpers/index.js';
import {
  assertExit,
  comparableNotesDb,
  containsSecret,
  countSessions,
  deployOnA,
  findRunLeftovers,
  isFfl,
  isTargetRun,
  withoutVersionChecks,
  sampleLabProcesses,
  parseReport,
  readJournal,
  readStateFiles,
  readTargetJournal,
  type LabProcess,
  type MigrateReportJson,
} from './migrate-lab.js';

/**
 * The app's roles and database as the catalogs show them (POSTGRES_FIDELITY_SQL, one line per row). bin/install
 * on the target sets the role's password again (same password, new SCRAM salt): the verifier is left out.
 */
async function pgCatalogs(shell: Shell): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  const psql = (database: string): string => `psql -X -q -At -v ON_ERROR_STOP=1 -d ${database}`;
  for (const [name, query] of Object.entries(POSTGRES_FIDELITY_SQL.server))
    result[name] = (await runOrThrow(shell, psql('postgres'), `${query}\n`)).split('\n').filter(Boolean);
  for (const [name, query] of Object.entries(POSTGRES_FIDELITY_SQL.database))
    result[name] = (await runOrThrow(shell, psql('notes'), `${query}\n`)).split('\n').filter(Boolean);
  result.roles = result.roles!.map((line) => line.replace(/\|SCRAM-SHA-256\$[^|]*$/, '|<scram>'));
  return result;
}

/** What pg_dump alone loses, given to notes on the source: run as the lab's admin on host a. */
const PG_FIDELITY_FIXTURE = String.raw`
ALTER ROLE notes_app SET statement_timeout = '7s';
ALTER ROLE notes_app SET search_path = "$user", public;
ALTER ROLE notes_app VALID UNTIL '2099-01-02 03:04:05+00';
COMMENT ON ROLE notes_app IS 'the notes app''s role';
ALTER ROLE notes_app IN DATABASE notes SET work_mem = '6MB';
GRANT pg_read_all_stats TO notes_app WITH ADMIN OPTION;
\connect notes
CREATE SCHEMA ext AUTHORIZATION notes_app;
SET ROLE notes_app;
CREATE EXTENSION pgcrypto;
CREATE EXTENSION hstore WITH SCHEMA ext;
CREATE TABLE fidelity_probe (id serial, v text);
REVOKE ALL ON fidelity_probe FROM notes_app;
GRANT SELECT ON fidelity_probe TO notes_app;
CREATE TABLE fidelity_full (id int, v text);
GRANT ALL ON fidelity_full TO notes_app;
GRANT SELECT (id), UPDATE (v) ON fidelity_full TO PUBLIC;
GRANT USAGE ON SEQUENCE fidelity_probe_id_seq TO PUBLIC;
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;
RESET ROLE;
`;

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

test('notes migrates over ssh (one session), ffl, scp and local with identical data, fidelity, history, plan = run, no secret leaks', {
  timeout: 900_000,
}, async (t) => {
  // ffl (the stand-in) carries the bundle to c; this test is about what arrives, not when: no stand-in delays.
  await withReleases([undefined], ([release]) =>
    withLab({ hosts: 4, fflTimeScale: 0, release: release!.file }, async (lab: Lab) => {
      const a = labShell(lab, 'a');
      for (const host of lab.hosts) {
        const deploy = await runOrThrow(labShell(lab, host.name), 'command -v deploy; deploy --version');
        assert.deepEqual(
          deploy.trim().split('\n'),
          [`${host.deployPrefix}/bin/deploy`, release!.version],
          `host ${host.name} runs the installed release`,
        );
      }
      const hostA = lab.host('a');
      const appDir = `${hostA.appsRoot}/notes`;
      const uploads = `${appDir}/data/uploads`;
      const report = randomBytes(200_000);
      let credentials = { username: '', password: '' };
      /** The archive each migration used (the retention's subject), and the app's own backup (never pruned). */
      const archivesOf: Record<string, string> = {};
      let ownBackup = '';
      const borgList = (host: string): Promise<string> => {
        const target = lab.host(host);
        return runOrThrow(
          labShell(lab, host),
          `export BORG_REPO=${quoteWord(`${target.stateDir}/borg/notes`)} BORG_PASSCOMMAND="cat ${target.appsRoot}/notes/secrets/borg.pass" BORG_BASE_DIR=${quoteWord(`${target.stateDir}/apps/notes/borg-test`)} BORG_RELOCATED_REPO_ACCESS_IS_OK=yes; borg list --format '{archive} {id}{NL}'`,
        );
      };

      /** Checks a migrated copy on `host`: uploads byte-identical, database identical, the app usable over HTTP. */
      const checkTarget = async (host: string, result: MigrateReportJson): Promise<void> => {
        const target = lab.host(host);
        const shell = labShell(lab, host);
        assert.equal(result.ok, true, JSON.stringify(result.failure));
        assert.equal(
          result.targetReport?.verification.ok,
          true,
          JSON.stringify(result.targetReport?.verification.problems),
        );
        assert.deepEqual(result.parts.map((part) => part.id).slice(0, 5), [
          'files',
          'volume:uploads',
          'volume:logs',
          'roles',
          'database',
        ]);
        // Nothing of the run is left on the target but the app itself: no staging, database, lock or temp dir.
        assert.deepEqual(
          (await findRunLeftovers(lab, host, result.runId)).filter((line) => !line.startsWith('process')),
          [],
        );
        const uploadsA = await treeFingerprint(a, uploads, { mtime: true });
        const uploadsB = await treeFingerprint(shell, `${target.appsRoot}/notes/data/uploads`, { mtime: true });
        const withoutMtime = (fingerprint: typeof uploadsA): typeof uploadsA => ({
          ...fingerprint,
          entries: fingerprint.entries.map(({ mtime: _mtime, ...entry }) => entry),
        });
        assert.deepEqual(
          diffTreeFingerprints(withoutMtime(uploadsA), withoutMtime(uploadsB)),
          [],
          `uploads on ${host} differ`,
        );
        // borg export-tar keeps whole seconds only; '.' changes on every write.
        const seconds = (fingerprint: typeof uploadsA): string[] =>
          fingerprint.entries
            .filter((entry) => entry.type !== 'd')
            .map((entry) => `${entry.path} ${Math.floor(Number(entry.mtime))}`);
        assert.deepEqual(seconds(uploadsB), seconds(uploadsA), `mtimes on ${host} differ`);
        // Both copies run: health login checks and bin/install change users and sessions (comparableNotesDb says how).
        const dbTarget = await dbFingerprint(shell, 'notes');
        assert.deepEqual(comparableNotesDb(dbTarget), comparableNotesDb(await dbFingerprint(a, 'notes')));
        assert.equal(dbTarget.tables['public.notes']?.rows, 2, 'the welcome note and the added one');
        // PostgreSQL: the catalogs of the app's roles and database, field by field, but for what --plan named.
        const [pgA, pgT] = [await pgCatalogs(a), await pgCatalogs(shell)];
        const admin = (await runOrThrow(shell, 'psql -X -q -At -d postgres -c "SELECT current_user"')).trim();
        assert.ok(
          pgA.extensions!.some((line) => /^hstore\|notes_app\|.*\|ext\|o:notes_app$/.test(line)),
          'hstore belongs to notes_app on a',
        );
        pgA.extensions = pgA.extensions!.map((line) =>
          line.startsWith('hstore|')
            ? line.replace(/^hstore\|notes_app\|/, `hstore|${admin}|`).replace(/\|o:notes_app$/, '|')
            : line,
        );
        for (const name of Object.keys(pgA))
          assert.deepEqual(pgT[name], pgA[name], `PostgreSQL ${name} differs between a and ${host}`);
        const client = new NotesClient(`http://${target.address}:8080`);
        const css = await client.get('/static/style.css');
        assert.equal(css.status, 200);
        assert.equal(sha256(css.body), sha256(readFileSync(`${appDir}/app/public/style.css`)));
        assert.match((await client.get('/notes-public')).body.toString('utf8'), /Welcome to notes/);
        await client.login(credentials.username, credentials.password);
        const page = (await client.get('/notes')).body.toString('utf8');
        assert.match(page, /Signed in as admin/);
        assert.match(page, /Ünïcødé title ✓/);
        assert.equal(sha256((await client.get('/uploads/report.bin')).body), sha256(report));
        await assert.rejects(
          new NotesClient(`http://${target.address}:8080`).login(credentials.username, `${credentials.password}x`),
          /login as admin failed/,
        );
      };

      await t.test(
        'set up notes on host a with odd entries, xattrs, an ACL, a 2050 mtime and a sparse file',
        async () => {
          assertExit(await deployOnA(lab, ['init', 'notes']), 0, 'init notes');
          assertExit(await deployOnA(lab, ['install', 'notes']), 0, 'install notes');
          assertExit(await deployOnA(lab, ['start', 'notes']), 0, 'start notes');
          credentials = parseCredentials(
            await runOrThrow(a, `cat ${quoteWord(`${appDir}/secrets/admin.credentials`)}`),
          );
          const client = new NotesClient(`http://${hostA.address}:8080`);
          await client.login(credentials.username, credentials.password);
          await client.addNote('Ünïcødé title ✓', 'quotes \' " and a\ttab');
          await client.upload('report.bin', report);
          await runOrThrow(
            a,
            [
              `cd ${quoteWord(uploads)}`,
              'ln -s report.bin latest',
              'ln report.bin report-hardlink.bin',
              "printf 'private\\n' > private.txt && chmod 0640 private.txt && chown 4321:4322 private.txt",
              'setfattr -n user.origin -v lab-a report.bin && setfattr -n user.note -v "two words" private.txt',
              "printf 'acl\\n' > acl.txt && setfacl -m u:4321:rw acl.txt",
              "printf 'future\\n' > late.txt && touch -m -d '2050-06-01 12:00:00 UTC' late.txt",
              'truncate -s 96M sparse.img && printf head | dd of=sparse.img conv=notrunc status=none && printf tail | dd of=sparse.img bs=1 seek=$((80*1024*1024)) conv=notrunc status=none',
            ].join(' && '),
          );
          await runOrThrow(a, 'psql -X -q -v ON_ERROR_STOP=1 -d postgres', PG_FIDELITY_FIXTURE);
          const allocated = Number((await runOrThrow(a, `stat -c %b ${quoteWord(`${uploads}/sparse.img`)}`)).trim());
          assert.ok(allocated * 512 < 1024 * 1024, `sparse.img on a is sparse (${allocated} blocks)`);
          // Migration archives beyond the newest 2 are pruned (app.yaml migrate.keep_archives); an own backup is not one.
          await runOrThrow(a, `printf '  keep_archives: 2\\n' >> ${quoteWord(`${appDir}/app.yaml`)}`);
          const backup = await deployOnA(lab, ['backup', 'notes', '--json']);
          assertExit(backup, 0, 'backup notes');
          ownBackup = (JSON.parse(backup.stdout) as { results: { archive: string }[] }).results[0]!.archive;
        },
      );

      await t.test(
        'over ssh to b: one ssh session; --plan equals the executed steps on both hosts; xattrs, ACL, 2050 mtime and sparseness arrive',
        async () => {
          const planRun = await deployOnA(lab, [
            'migrate',
            'notes',
            '--to',
            'b',
            '--transport',
            'ssh',
            '--plan',
            '--json',
          ]);
          assertExit(planRun, 0, 'migrate --plan');
          const planned = JSON.parse(planRun.stdout) as {
            plan: { runId: string; archive: string; steps: { id: string; argv: string[] }[] };
            target: { plan: { id: string; commands: string[][] }[] };
            notes: string[];
          };
          assert.deepEqual(
            planned.notes.filter((note) => note.startsWith('database:')),
            [
              "database: extension hstore is owned by notes_app here but will be owned by the target's admin: PostgreSQL cannot change an extension's owner, and hstore lives in schema ext, which the restore creates only after the extension would have to exist",
            ],
            'preflight names the one database object that cannot arrive as it is (pgcrypto, in public, keeps notes_app), and why',
          );
          assert.deepEqual(readdirSync(lab.host('b').appsRoot), [], '--plan changed nothing on b');
          const { result: run, sessions } = await countSessions(lab, 'b', () =>
            deployOnA(lab, ['migrate', 'notes', '--to', 'b', '--transport', 'ssh', '--json']),
          );
          assertExit(run, 0, 'migrate over ssh');
          const result = parseReport(run);
          await checkTarget('b', result);
          archivesOf.sshB = result.archive;
          assert.deepEqual(
            withoutVersionChecks(sessions).map((session) => isTargetRun(session, 'notes')),
            [true],
            `one ssh session carried the whole migration on b: ${sessions.map((session) => session.argv.join(' ')).join(' | ')}`,
          );
          assert.ok(
            result.targetReport?.verification.checks.some((c) => c.name === 'metadata uploads' && c.ok),
            'verification compared the carried metadata',
          );

          const normalize = (text: string, runId: string, archive: string): string =>
            text
              .split(runId)
              .join('<run>')
              .split(runId.toLowerCase().replace(/[^a-z0-9]/g, '_'))
              .join('<run>')
              .split(archive)
              .join('<archive>');
          // The source: the run record's plan is --plan's, and the steps ran in that order with those commands.
          const plannedSteps = planned.plan.steps.map((step) => ({
            id: step.id,
            argv: normalize(displayArgv(step.argv), planned.plan.runId, planned.plan.archive),
          }));
          const journal = await readJournal(result.journal);
          const planLine = journal.find((line) => line.step === 'plan');
          const recorded = (planLine?.detail?.steps ?? []).map((step) => ({
            id: step.id,
            argv: normalize(step.argv, result.runId, result.archive),
          }));
          assert.deepEqual(recorded, plannedSteps, 'the run record plan equals --plan');
          const executed = journal
            .filter((line) => line.status === 'start')
            .map((line) => ({ id: line.step, argv: normalize(line.argv ?? '', result.runId, result.archive) }));
          assert.deepEqual(executed, plannedSteps, 'the steps ran in the planned order with the planned commands');
          // The target: its run record holds the plan --plan showed, and every command it ran is in its step.
          const targetPlanned = planned.target.plan.map((step) => ({
            id: step.id,
            commands: step.commands.map((argv) =>
              normalize(displayArgv(argv), planned.plan.runId, planned.plan.archive),
            ),
          }));
          const targetJournal = await readTargetJournal(result.targetReport!.journal!);
          const targetPlan = targetJournal
            .find((line) => line.t === 'plan')!
            .steps!.map((step) => ({
              id: step.id,
              commands: step.commands.map((command) => normalize(command, result.runId, result.archive)),
            }));
          assert.deepEqual(
            targetPlan.map((step) => step.id),
            targetPlanned.map((step) => step.id),
            'the target ran the steps --plan showed',
          );
          assert.ok(
            targetPlanned.some((step) => step.id === 'metadata:uploads'),
            'the plan carries the metadata of uploads',
          );
          assert.deepEqual(
            targetJournal.filter((line) => line.t === 'step' && line.status === 'start').map((line) => line.step),
            targetPlan.map((step) => step.id),
            'every target step ran, in order',
          );
          for (const command of targetJournal.filter((line) => line.t === 'command')) {
            const step = targetPlan.find((candidate) => candidate.id === command.step);
            assert.ok(
              step?.commands.includes(normalize(command.argv ?? '', result.runId, result.archive)),
              `${command.step} ran \`${command.argv}\`, which its plan lists`,
            );
          }
          assert.ok(
            targetJournal.filter((line) => line.t === 'command').length >= 8,
            'the target journaled the commands it ran',
          );
          assert.equal(targetJournal.at(-1)?.outcome, 'finished');

          const b = labShell(lab, 'b');
          const dir = `${lab.host('b').appsRoot}/notes/data/uploads`;
          const xattrs = await runOrThrow(
            b,
            `cd ${quoteWord(dir)} && getfattr --absolute-names -d -m user. report.bin private.txt`,
          );
          assert.match(xattrs, /user\.origin="lab-a"/);
          assert.match(xattrs, /user\.note="two words"/);
          assert.match(await runOrThrow(b, `getfacl -cp ${quoteWord(`${dir}/acl.txt`)}`), /^user:4321:rw-$/m);
          assert.equal(
            (await runOrThrow(b, `date -u -d @$(stat -c %Y ${quoteWord(`${dir}/late.txt`)}) +%FT%T`)).trim(),
            '2050-06-01T12:00:00',
          );
          const [size, blocks] = (await runOrThrow(b, `stat -c '%s %b' ${quoteWord(`${dir}/sparse.img`)}`))
            .trim()
            .split(' ')
            .map(Number);
          assert.equal(size, 96 * 1024 * 1024);
          assert.ok(blocks! * 512 < 1024 * 1024, `sparse.img on b allocates ${blocks} blocks`);
          assert.equal(
            await runOrThrow(
              b,
              `dd if=${quoteWord(`${dir}/sparse.img`)} bs=1 skip=$((80*1024*1024)) count=4 status=none`,
            ),
            'tail',
          );

          // PostgreSQL (compared on every target by checkTarget): the fixture is on a.
          const pgA = await pgCatalogs(a);
          assert.match(
            pgA.roles!.join('\n'),
            /^notes_app\|.*\|2099-01-02 03:04:05\+00\|\{statement_timeout=7s,/m,
            'the fixture is on a',
          );
          assert.match(pgA.extensions!.join('\n'), /^pgcrypto\|notes_app\|/m);
          assert.match(
            pgA.relationAcls!.join('\n'),
            /^public\.fidelity_full\|r\|notes_app\|\{notes_app=arwdDxt\/notes_app\}$/m,
          );
          assert.match(pgA.roleSettingsInDatabase!.join('\n'), /^notes\|notes_app\|\{work_mem=6MB\}$/m);
        },
      );

      await t.test(
        'over ffl (stand-in) to c: no secret in process lists, logs, events, report or run record',
        async () => {
          const appEnv = readFileSync(`${appDir}/secrets/app.env`, 'utf8');
          const secrets = [...appEnv.matchAll(/^[A-Z_]+=(.+)$/gm)].map((match) => match[1]!.trim());
          secrets.push(readFileSync(`${appDir}/secrets/borg.pass`, 'utf8').trim());
          assert.equal(secrets.length, 4);
          assert.ok(secrets.every((s) => s.length >= 16));
          const eventsFile = join(hostA.root, 'tmp', 'migrate-ffl-events.jsonl');
          const sampler = sampleLabProcesses(lab);
          let processes: LabProcess[] = [];
          let run: Awaited<ReturnType<typeof deployOnA>>;
          try {
            run = await deployOnA(lab, [
              '--events',
              eventsFile,
              'migrate',
              'notes',
              '--to',
              'c',
              '--transport',
              'ffl',
              '--json',
            ]);
          } finally {
            processes = await sampler.stop();
          }
          assertExit(run, 0, 'migrate over ffl');
          const result = parseReport(run);
          await checkTarget('c', result);
          archivesOf.fflC = result.archive;
          assert.equal(result.transport, 'ffl');

          const downloads = processes.filter((p) => isFfl(p) && p.argv.includes('download'));
          // Counted by the program that transfers (the stand-in's node process): its bash wrapper's `$(...)`
          // forks a short-lived subshell with the same argv, which the sampler sometimes catches.
          const transfers = downloads.filter((p) =>
            p.argv.some((word) => /\/ffl-standin\/(bin\/\.\.\/)?dist\/main\.js$/.test(word)),
          );
          assert.equal(
            new Set(transfers.map((p) => p.pid)).size,
            1,
            `one ffl transfer carried the whole bundle: ${downloads.map((p) => `${p.host} ${p.pid} ${p.argv.join(' ')}`).join(' | ')}\n${run.stderr.slice(-3000)}`,
          );
          const pickupCodes = [
            ...new Set(
              processes
                .filter(isFfl)
                .flatMap((p) =>
                  p.argv.includes('--pickup-code') ? [p.argv[p.argv.indexOf('--pickup-code') + 1]!] : [],
                ),
            ),
          ];
          assert.ok(
            pickupCodes.length === 1 && pickupCodes.every((code) => /^\d{6}$/.test(code)),
            `pickup codes seen: ${pickupCodes.join(', ')}`,
          );
          const all = [...secrets, ...pickupCodes];
          const carrying = processes.filter((p) => all.some((secret) => containsSecret(p.argv.join(' '), secret)));
          // ffl has no environment variable for the pickup code (reference §2/§4): only ffl's own argv may carry it.
          assert.deepEqual(
            carrying.filter((p) => !isFfl(p)).map((p) => `${p.host} ${p.pid}: ${p.argv.join(' ')}`),
            [],
            'no process of ours shows a secret',
          );
          assert.ok(
            carrying.every((p) => secrets.every((secret) => !p.argv.join(' ').includes(secret))),
            'ffl argv never holds an app secret',
          );
          assert.ok(carrying.some((p) => p.host === 'c' && p.argv.includes('download')));

          const places = [
            ...readStateFiles(hostA.stateDir),
            ...readStateFiles(lab.host('c').stateDir),
            { path: 'events file', text: readFileSync(eventsFile, 'utf8') },
            { path: 'report (--json)', text: run.stdout },
            { path: 'stderr', text: run.stderr },
          ];
          assert.ok(
            places.some((place) => place.path === result.journal),
            'the run record is among the files searched',
          );
          assert.ok(
            places.some((place) => place.path.includes('/logs/')),
            'deploy logs are among the files searched',
          );
          assert.ok(
            readFileSync(eventsFile, 'utf8').includes('stream.progress') ||
              readFileSync(eventsFile, 'utf8').includes('migrate.stream'),
            'the events file has the run',
          );
          const leaks = places.flatMap((place) =>
            all
              .filter((secret) => containsSecret(place.text, secret))
              .map((secret) => `${place.path}: ${secret.slice(0, 3)}...`),
          );
          assert.deepEqual(leaks, []);
        },
      );

      await t.test("over scp to d with --with-history: the Borg archive list on d equals a's", async () => {
        const run = await deployOnA(lab, [
          'migrate',
          'notes',
          '--to',
          'd',
          '--transport',
          'scp',
          '--with-history',
          '--json',
        ]);
        assertExit(run, 0, 'migrate over scp with history');
        const result = parseReport(run);
        await checkTarget('d', result);
        archivesOf.scpD = result.archive;
        assert.ok(result.parts.some((part) => part.id === 'history'));
        assert.ok(result.targetReport?.verification.checks.some((c) => c.name === 'borg history' && c.ok));
        assert.ok(result.stagedBytes > 0, 'the legacy file mode reports the bytes it staged');
        const listA = await borgList('a');
        assert.ok(listA.trim().split('\n').length >= 3, `a has the archives of three migrations:\n${listA}`);
        assert.equal(await borgList('d'), listA);
        // Retention (keep_archives: 2): the two newest migration archives, plus b's, the newest finished migration there.
        assert.deepEqual(result.archives, {
          keep: 2,
          pruned: [],
          kept: [archivesOf.scpD, archivesOf.fflC, archivesOf.sshB],
          protected: [archivesOf.sshB],
          compacted: false,
        });
      });

      await t.test(
        'over the local transport to b again (another apps root and cluster on this machine), replacing the copy there',
        async () => {
          const { result: run, sessions } = await countSessions(lab, 'b', () =>
            deployOnA(lab, ['migrate', 'notes', '--to', 'b', '--transport', 'local', '--replace', '--json']),
          );
          assertExit(run, 0, 'migrate over local with --replace');
          const result = parseReport(run);
          await checkTarget('b', result);
          archivesOf.localB = result.archive;
          assert.equal(result.transport, 'local');
          assert.deepEqual(sessions, [], 'no ssh session: the target-side run was a local process');
          assert.deepEqual(
            result.parts.map((part) => part.path),
            result.parts.map(() => 'local'),
          );
          // A fourth migration: the first one's archive (to b, now superseded there) is pruned; c's stays for a
          // cutover to c though it is not among the newest two; the app's own backup is never touched.
          assert.deepEqual(result.archives, {
            keep: 2,
            pruned: [archivesOf.sshB],
            kept: [archivesOf.localB, archivesOf.scpD, archivesOf.fflC],
            protected: [archivesOf.fflC],
            compacted: true,
          });
          assert.deepEqual(
            (await borgList('a'))
              .trim()
              .split('\n')
              .map((line) => line.split(' ')[0]),
            [ownBackup, archivesOf.fflC, archivesOf.scpD, archivesOf.localB],
          );
          assert.match(run.stdout, new RegExp(`"pruned": \\[\\s*"${archivesOf.sshB}"`));
        },
      );
    }),
  );
});
