// End to end: pairing mode. Host b has no SSH trust from a (a's key is taken off b's authorized keys);
// an operator drives each host through a terminal of their own (ssh -tt, a pty there): on a
// `deploy migrate notes --pair` prints the link and the pickup code, on b `deploy receive notes
// --from <link>` asks for the code without echo. ffl is the stand-in (docs/ffl-standin.md); everything
// else is real. Then the faults: a wrong code (ffl's lockout), the target run killed mid-volume, the
// sending ffl killed, Ctrl+C on either side - after each, nothing of the run is left on either host
// (found by run id), and a new pairing succeeds. Then the cutover in pairing mode (decision 0011): writes on a
// after that migration; a paired cutover whose new host fails its health rolls back there, a stays stopped
// until its operator resumes it as b's screen says; a second one applies exactly the delta on b, and a
// stays stopped until the code b shows is typed on a (--confirm), which marks it moved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { quoteWord } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import {
  NotesClient,
  dbFingerprint,
  diffTreeFingerprints,
  labShell,
  runOrThrow,
  treeFingerprint,
  withLab,
  type Shell,
} from './helpers/index.js';
import {
  comparableNotesDb,
  containsSecret,
  findRunLeftovers,
  isFfl,
  isTargetRun,
  listLabProcesses,
  openTerminal,
  readStateFiles,
  readTargetJournal,
  sampleLabProcesses,
  waitForProcess,
  type LabProcess,
  type TerminalSession,
} from './migrate-lab.js';

const RUN_ID = /run (\d{8}T\d{6}Z-[0-9a-f]{6})/;

const REAL_FFL_TIMINGS = 'FFL_STANDIN_TIME_SCALE=1';

test('pairing mode: b takes notes with a link and a code and no SSH from a; faults on either side leave nothing of the run', {
  timeout: 900_000,
}, async (t) => {
  // The ffl stand-in at time scale 0 for the faults; the main pairing runs it at the real ffl timings.
  await withLab({ hosts: 2, fflTimeScale: 0 }, async (lab: Lab) => {
    const a = labShell(lab, 'a');
    const hostA = lab.host('a');
    const hostB = lab.host('b');
    const appDir = `${hostA.appsRoot}/notes`;
    const operatorKey = join(lab.dir, 'operator_ed25519');
    /** b as its own operator reaches it: with the operator's key, not a's. */
    const b: Shell = {
      where: 'host b (operator)',
      run: (command, input) =>
        lab.ssh('b', command, { identity: operatorKey, ...(input === undefined ? {} : { input }) }),
    };
    const failedRuns: { runId: string; inputRunId?: string }[] = [];
    const terminals: TerminalSession[] = [];
    /** A subtest that failed halfway may leave its terminals open: hang them up before the next one starts. */
    const hangUpAll = async (): Promise<void> => {
      await Promise.all(terminals.splice(0).map((terminal) => terminal.hangUp()));
    };

    /** Starts `deploy migrate notes --pair` (or `deploy cutover`) on a's terminal; resolves with the link, the code and the run id. */
    const startPairing = async (
      flags = '',
      env = '',
      verb: 'migrate' | 'cutover' = 'migrate',
    ): Promise<{ source: TerminalSession; link: string; code: string; runId: string }> => {
      await hangUpAll();
      const source = openTerminal(lab, 'a', `${env} deploy ${verb} notes --pair --stall-seconds 10 ${flags}`);
      terminals.push(source);
      const [, runId] = await source.waitFor(RUN_ID);
      const [, link] = await source.waitFor(/Link:\s+(\S+)/);
      const [, code] = await source.waitFor(/Pickup code:\s+(\d{6})/);
      return { source, link: link!, code: code!, runId: runId! };
    };
    /** Starts `deploy receive notes --from <link>` on b's terminal and types the code at its prompt. */
    const receiveOnB = async (link: string, code: string, flags = '', env = ''): Promise<TerminalSession> => {
      const target = openTerminal(lab, 'b', `${env} deploy receive notes --from ${quoteWord(link)} ${flags}`, {
        identity: operatorKey,
      });
      terminals.push(target);
      await target.waitFor(/Pickup code \(shown on the source's terminal\): /);
      target.type(`${code}\r`);
      return target;
    };
    /** The receiving command's own run id (its ffl download carries it), from b's run record of `runId`. */
    const inputRunIdOf = async (runId: string): Promise<string | undefined> => {
      const lines = await readTargetJournal(`${hostB.stateDir}/apps/notes/incoming/${runId}.jsonl`).catch(() => []);
      const input = (lines as unknown as { t: string; runId?: string }[]).find((line) => line.t === 'input');
      return input?.runId;
    };
    /** Everything of a run on both hosts, by its id and by the id its input's processes carried. */
    const leftovers = async (run: { runId: string; inputRunId?: string }): Promise<string[]> => {
      const ids = [run.runId, ...(run.inputRunId ? [run.inputRunId] : [])];
      const found: string[] = [];
      for (const id of ids)
        found.push(...(await findRunLeftovers(lab, 'a', id)), ...(await findRunLeftovers(lab, 'b', id, { shell: b })));
      return found;
    };
    /** b as a failed run must leave it: no app, no notes database or role. */
    const bIsEmpty = async (): Promise<void> => {
      assert.deepEqual(
        (await runOrThrow(b, `ls -A ${quoteWord(hostB.appsRoot)}`)).trim(),
        '',
        "nothing in b's apps root",
      );
      assert.equal(
        (
          await runOrThrow(
            b,
            `psql -X -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = 'notes' OR datname LIKE 'dk\\_%'"`,
          )
        ).trim(),
        '0',
        'no database of the app on b',
      );
      assert.equal(
        (
          await runOrThrow(b, `psql -X -At -d postgres -c "SELECT count(*) FROM pg_roles WHERE rolname = 'notes_app'"`)
        ).trim(),
        '0',
        'no role of the app on b',
      );
    };
    /** After a failed pairing: its exits, and nothing of it on either host (by run id); no ffl left. */
    const assertCleanAfter = async (what: string, runId: string): Promise<void> => {
      const run = { runId, inputRunId: await inputRunIdOf(runId) };
      failedRuns.push(run);
      assert.deepEqual(await leftovers(run), [], `${what}: nothing of run ${runId} is left on a or b`);
      await bIsEmpty();
      assert.deepEqual(
        listLabProcesses(lab)
          .filter((p) => isFfl(p) || isTargetRun(p, 'notes'))
          .map((p) => `${p.host} ${p.pid}: ${p.argv.join(' ')}`),
        [],
        `${what}: no ffl and no deploy receive left running`,
      );
    };

    await t.test(
      "set up: b trusts only its operator's key, not a's; notes runs on a with an upload and rows",
      async () => {
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator-of-b', '-f', operatorKey]);
        writeFileSync(hostB.authorizedKeysPath, readFileSync(`${operatorKey}.pub`, 'utf8'), { mode: 0o600 });
        const fromA = await a.run(`ssh -F ${quoteWord(lab.sshConfigPath)} b true`);
        assert.equal(fromA.exitCode, 255, `a cannot ssh into b any more: ${fromA.stderr}`);
        assert.match(fromA.stderr, /Permission denied/);
        assert.equal((await lab.ssh('b', 'true')).exitCode, 255, 'the lab key is refused on b too');
        await runOrThrow(b, 'true');
        await runOrThrow(a, 'deploy init notes && deploy install notes && deploy start notes');
        await runOrThrow(a, `head -c 16M /dev/urandom > ${quoteWord(`${appDir}/data/uploads/photo.bin`)}`);
        // For the paired cutover at the end: a file it changes and one it deletes.
        await runOrThrow(
          a,
          `cd ${quoteWord(`${appDir}/data/uploads`)} && printf 'change me\\n' > change.txt && printf 'delete me\\n' > delete.txt`,
        );
        await runOrThrow(
          a,
          `psql -X -q -d notes -c "INSERT INTO notes (title, body) SELECT 'paired ' || g, md5(g::text) FROM generate_series(1, 500) g"`,
        );
      },
    );

    await t.test(
      "pairing: the link and code move notes to b; files, rows, roles identical, healthy; the code only on a's terminal and in ffl's own argv",
      async () => {
        const eventsFile = join(hostA.root, 'tmp', 'pair-events.jsonl');
        const sampler = sampleLabProcesses(lab);
        let sampled: LabProcess[] = [];
        let source: TerminalSession | undefined;
        let target: TerminalSession | undefined;
        let code = '';
        let runId = '';
        try {
          // At the real ffl timings (reference §8): the link after 1-3 s, the first byte 8-13 s after b starts, ~3 MiB/s.
          const pairing = await startPairing(`--wait 300 --events ${quoteWord(eventsFile)}`, REAL_FFL_TIMINGS);
          ({ source, code, runId } = pairing);
          target = await receiveOnB(pairing.link, code, '', REAL_FFL_TIMINGS);
          assert.equal(await target.done, 0, `deploy receive on b:\n${target.output().slice(-4000)}`);
          assert.equal(await source.done, 0, `deploy migrate --pair on a:\n${source.output().slice(-4000)}`);
        } finally {
          sampled = await sampler.stop();
        }
        assert.match(
          source.output(),
          /Delivered the bundle of notes to the new host in [\d.]+ s \(pulled in [\d.]+ s, path direct\)/,
        );
        assert.match(
          source.output(),
          /the new host pulls over the direct path/,
          'a says the path as soon as it is known',
        );
        assert.match(
          source.output(),
          /deploy receive notes --from http:\/\/127\.0\.0\.1:\d+\/\w+/,
          'a prints the command to run on b',
        );
        assert.match(target.output(), /Received notes from a in [\d.]+ s: verified, installed, started and healthy/);

        // The copy on b: uploads byte-identical, database identical, the role there, health passing.
        const sum = async (shell: Shell, host: string): Promise<string> =>
          (
            await runOrThrow(
              shell,
              `cd ${quoteWord(`${lab.host(host).appsRoot}/notes/data/uploads`)} && find . -type f -print0 | sort -z | xargs -0 sha256sum`,
            )
          ).trim();
        assert.equal(await sum(b, 'b'), await sum(a, 'a'));
        assert.deepEqual(
          comparableNotesDb(await dbFingerprint(b, 'notes')),
          comparableNotesDb(await dbFingerprint(a, 'notes')),
        );
        assert.equal(
          (
            await runOrThrow(
              b,
              `psql -X -At -d postgres -c "SELECT count(*) FROM pg_roles WHERE rolname = 'notes_app'"`,
            )
          ).trim(),
          '1',
        );
        await runOrThrow(b, 'deploy health notes');

        // The code: on a's terminal (that is where it is shown), in ffl's own argv on b (ffl takes it no other way), nowhere else.
        assert.ok(containsSecret(source.output(), code), "a's terminal shows the code");
        assert.ok(!containsSecret(target.output(), code), "b's prompt does not echo the code");
        const carrying = sampled.filter((p) => containsSecret(p.argv.join(' '), code));
        assert.deepEqual(
          carrying
            .filter((p) => !(isFfl(p) && p.argv.includes('download')))
            .map((p) => `${p.host} ${p.pid}: ${p.argv.join(' ')}`),
          [],
          'no process of ours has the code in its argv',
        );
        const places = [
          ...readStateFiles(hostA.stateDir),
          ...readStateFiles(hostB.stateDir),
          ...readStateFiles(join(hostA.root, 'tmp')),
          ...readStateFiles(join(hostB.root, 'tmp')),
          ...readStateFiles(join(hostA.root, 'home')),
          ...readStateFiles(join(hostB.root, 'home')),
        ];
        assert.ok(
          places.some((place) => place.path === eventsFile) && places.some((place) => place.path.includes('/logs/')),
          'the events file and the run logs are among the files searched',
        );
        assert.deepEqual(
          places.filter((place) => containsSecret(place.text, code)).map((place) => place.path),
          [],
          'no file of ours holds the code',
        );
        // Nothing of the run is left but the app on b.
        const inputRunId = await inputRunIdOf(runId);
        assert.ok(
          inputRunId !== undefined && inputRunId !== runId,
          "b's run record names the id its ffl download carried",
        );
        assert.deepEqual(
          (await leftovers({ runId, inputRunId })).filter((line) => !line.startsWith('process')),
          [],
        );
      },
    );

    await t.test('reset: b empty again for the faults', async () => {
      await hangUpAll();
      await runOrThrow(
        b,
        `${quoteWord(`${hostB.appsRoot}/notes/bin/stop`)}; rm -rf ${quoteWord(`${hostB.appsRoot}/notes`)} ${quoteWord(`${hostB.stateDir}/borg/notes`)}; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS notes WITH (FORCE)" -c "DROP ROLE IF EXISTS notes_app"`,
      );
      await bIsEmpty();
    });

    await t.test(
      "a wrong code is refused on b and ffl's lockout is reported; a waits out --wait, then stops and cleans up",
      async () => {
        const { source, link, code, runId } = await startPairing('--wait 40');
        const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
        const attempts: string[] = [];
        for (let attempt = 1; attempt <= 3; attempt += 1) {
          const result = await b.run(`DEPLOY_PICKUP_CODE=${wrong} deploy receive notes --from ${quoteWord(link)}`);
          assert.equal(result.exitCode, 5, `attempt ${attempt}: ${result.stderr}`);
          attempts.push(result.stderr);
        }
        assert.match(attempts[0]!, /pickup code was refused/);
        assert.match(attempts[2]!, /locked/, 'the third wrong code finds the link locked');
        assert.ok(
          attempts.every((text) => !text.includes(wrong) && !text.includes(code)),
          'no code in the messages',
        );
        assert.equal(await source.done, 5, source.output().slice(-3000));
        assert.match(source.output(), /nobody started pulling the bundle within 40 s/);
        await assertCleanAfter('a wrong code', runId);
      },
    );

    /** A pairing whose volume takes a while (the sending ffl throttled), stopped by `fault` once b receives the upload. */
    const interruptedPairing = async (
      what: string,
      fault: (sessions: { source: TerminalSession; target: TerminalSession }) => Promise<void>,
      exits: { source: number; target: number | 'killed' },
    ): Promise<string> => {
      const { source, link, code, runId } = await startPairing(
        '--wait 120',
        'FFL_STANDIN_THROTTLE_BYTES_PER_SEC=2000000',
      );
      const target = await receiveOnB(link, code);
      await target.waitFor(/\[receive:volume:uploads\]/);
      await fault({ source, target });
      assert.equal(await source.done, exits.source, `${what}: a\n${source.output().slice(-3000)}`);
      const targetExit = await target.done;
      if (exits.target === 'killed') assert.notEqual(targetExit, 0, `${what}: b`);
      else assert.equal(targetExit, exits.target, `${what}: b\n${target.output().slice(-3000)}`);
      return runId;
    };

    await t.test(
      'Ctrl+C on a mid-volume: a stops (130), b hears it and rolls back; nothing of the run left',
      async () => {
        const runId = await interruptedPairing('Ctrl+C on a', async ({ source }) => source.type('\u0003'), {
          source: 130,
          target: 5,
        });
        await assertCleanAfter('Ctrl+C on a', runId);
      },
    );

    await t.test(
      'Ctrl+C on b mid-volume: b rolls back (130); a sees the new host stop taking the bundle; nothing of the run left',
      async () => {
        const runId = await interruptedPairing('Ctrl+C on b', async ({ target }) => target.type('\u0003'), {
          source: 5,
          target: 130,
        });
        await assertCleanAfter('Ctrl+C on b', runId);
      },
    );

    await t.test(
      'the sending ffl killed mid-volume: both sides fail naming the sender; nothing of the run left',
      async () => {
        let targetOutput: () => string = () => '';
        let sourceOutput: () => string = () => '';
        const runId = await interruptedPairing(
          'ffl share killed',
          async ({ source, target }) => {
            targetOutput = target.output;
            sourceOutput = source.output;
            const share = await waitForProcess(
              lab,
              (p) => p.host === 'a' && isFfl(p) && p.argv.includes('-'),
              10_000,
              'the ffl share on a',
            );
            process.kill(share.pid, 'SIGKILL');
          },
          { source: 5, target: 5 },
        );
        assert.match(sourceOutput(), /ffl share ended \(killed by SIGKILL\) before the new host took the whole bundle/);
        // b blames the sending side, never its own consumers: its ffl found the share gone (at time scale 0
        // at once; the real ffl takes 29-33 s, transport-ffl-timing.test.ts covers that).
        assert.match(
          targetOutput(),
          /FAILED at step \[receive:volume:uploads\] \(transfer\): the sending ffl is gone: ffl download exited with code 1: Oops, something went wrong: .*Failed to get file metadata/,
        );
        await assertCleanAfter('the sending ffl killed', runId);
      },
    );

    let killed = '';
    await t.test(
      "the target run killed mid-volume: a stops when b stops taking bytes; b keeps the killed run's leftovers for the next run",
      async () => {
        killed = await interruptedPairing(
          'deploy receive killed',
          async () => {
            const receiver = await waitForProcess(
              lab,
              (p) => p.host === 'b' && isTargetRun(p, 'notes'),
              10_000,
              'deploy receive on b',
            );
            process.kill(receiver.pid, 'SIGKILL');
          },
          { source: 5, target: 'killed' },
        );
        assert.deepEqual(await findRunLeftovers(lab, 'a', killed), [], 'nothing of the run on a');
        assert.notDeepEqual(
          await findRunLeftovers(lab, 'b', killed, { shell: b }),
          [],
          'the killed run left its staging on b (nobody could clean up yet)',
        );
      },
    );

    await t.test(
      'a new pairing succeeds, and cleans up after the killed run; nothing of any failed run is left',
      async () => {
        // b pulls through ffl's relay this time (WebRTC off, as where UDP is blocked): still one bundle, one link, one code.
        const { source, link, code, runId } = await startPairing('--wait 300');
        const target = await receiveOnB(link, code, '', 'DISABLE_WEBRTC=true');
        assert.equal(await target.done, 0, target.output().slice(-4000));
        assert.equal(await source.done, 0, source.output().slice(-4000));
        assert.match(source.output(), /the new host pulls over the relay path \(through ffl's relay\)/);
        assert.match(source.output(), /\(pulled in [\d.]+ s, path relay\)/);
        assert.match(target.output(), new RegExp(`earlier run ${killed}: rolled back`));
        failedRuns.push({
          runId: killed,
          ...((await inputRunIdOf(killed)) ? { inputRunId: (await inputRunIdOf(killed))! } : {}),
        });
        for (const run of failedRuns)
          assert.deepEqual(await leftovers(run), [], `nothing of failed run ${run.runId} is left`);
        assert.ok(runId !== killed);
        await runOrThrow(b, 'deploy health notes');
      },
    );

    // ---- the cutover in pairing mode (decision 0011) ----
    const uploadsA = `${appDir}/data/uploads`;
    const uploadsB = `${hostB.appsRoot}/notes/data/uploads`;
    const notesRows = (shell: Shell): Promise<string> =>
      runOrThrow(shell, `psql -X -At -d notes -c "SELECT id, title, body FROM notes ORDER BY id"`);
    const pageOfA = async (): Promise<number> =>
      (await new NotesClient(`http://${hostA.address}:8080`).get('/')).status;
    const CONFIRM = /deploy cutover notes --confirm ([A-Z0-9]{4}-[A-Z0-9]{4})/;

    await t.test(
      'writes on a after the pairing: an upload, a changed and a deleted file, new and updated rows',
      async () => {
        await runOrThrow(
          a,
          `cd ${quoteWord(uploadsA)} && printf 'after the pairing\\n' > new.txt && printf 'changed, and longer than before\\n' > change.txt && rm delete.txt`,
        );
        await runOrThrow(
          a,
          `psql -X -q -d notes -c "INSERT INTO notes (title, body) SELECT 'after pairing ' || g, md5(g::text) FROM generate_series(1, 20) g" -c "UPDATE notes SET body = 'updated after pairing' WHERE title = 'paired 1'"`,
        );
      },
    );

    await t.test(
      "the sending ffl killed after a stopped writes, before the bundle's end left it: a serves again by itself",
      async () => {
        const { source, link, code } = await startPairing('--wait 120', '', 'cutover');
        const target = await receiveOnB(link, code);
        // Writes stop once b pulls; the final backup runs before any part (so before the trailer) is written.
        await source.waitFor(/\[backup\] fresh Borg archive/);
        const share = await waitForProcess(
          lab,
          (p) => p.host === 'a' && isFfl(p) && p.argv.includes('-'),
          10_000,
          'the ffl share on a',
        );
        process.kill(share.pid, 'SIGKILL');
        assert.equal(await source.done, 5, `a:\n${source.output().slice(-3000)}`);
        assert.notEqual(await target.done, 0, `b:\n${target.output().slice(-3000)}`);
        // b cannot have the trailer, so it applied nothing: a need not wait for a verdict.
        assert.match(source.output(), /notes serves here again \(bin\/maintenance off\)/);
        assert.doesNotMatch(source.output(), /stays stopped here/);
        assert.notEqual(await pageOfA(), 503);
        assert.equal(
          (await a.run(`test -e ${quoteWord(`${hostA.stateDir}/apps/notes/cutover-pending.json`)}`)).exitCode,
          1,
          'no cutover pending on a',
        );
      },
    );

    await t.test(
      'a paired cutover whose new host fails its health: b rolls back and says to resume a; a stays stopped until then, nothing lost',
      async () => {
        const manifestPath = `${hostB.appsRoot}/notes/app.yaml`;
        const manifest = readFileSync(manifestPath, 'utf8');
        const filesOnB = await treeFingerprint(b, uploadsB);
        const rowsOnB = await notesRows(b);
        writeFileSync(
          manifestPath,
          manifest.replace('contains: Welcome to notes', 'contains: A text this page never shows'),
        );
        try {
          const { source, link, code, runId } = await startPairing('--wait 120', '', 'cutover');
          assert.notEqual(await pageOfA(), 503, 'a serves on while the link waits for the new host');
          const target = await receiveOnB(link, code);
          assert.notEqual(await target.done, 0, `b:\n${target.output().slice(-3000)}`);
          assert.equal(await source.done, 0, `a delivered the bundle:\n${source.output().slice(-3000)}`);
          assert.match(target.output(), /Cutover of notes FAILED at step \[health/);
          assert.match(
            target.output(),
            /on a, unless it said it serves again by itself, run \(it serves there again; nothing of this cutover stayed here\):\s+deploy maintenance notes off/,
          );
          assert.doesNotMatch(target.output(), CONFIRM, 'b shows no confirmation code on a failure');
          assert.match(source.output(), /notes stays stopped here \(maintenance page\)/);
          // a does not resume on its own: it cannot know b rolled back.
          assert.equal(await pageOfA(), 503, 'a stays in maintenance');
          const wrong = await a.run('deploy cutover notes --confirm ACDE-FGHJ');
          assert.equal(wrong.exitCode, 2, wrong.stderr);
          assert.match(wrong.stderr, /not the code of the cutover of notes/);
          const again = await a.run('deploy cutover notes --pair');
          assert.notEqual(again.exitCode, 0);
          assert.match(again.stderr, /waits for its verdict/);
          // b is as the migration left it.
          assert.deepEqual(
            diffTreeFingerprints(filesOnB, await treeFingerprint(b, uploadsB)),
            [],
            'b has the migrated uploads again',
          );
          assert.equal(await notesRows(b), rowsOnB, 'b has the migrated rows again');
          assert.deepEqual(
            (await findRunLeftovers(lab, 'b', runId, { shell: b })).filter((line) => !line.startsWith('process')),
            [],
            'nothing of the failed cutover is left on b',
          );
          // The operator resumes a as b said: allowed (a is not marked moved), and the cutover can no longer be confirmed.
          await runOrThrow(a, 'deploy maintenance notes off');
          assert.notEqual(await pageOfA(), 503, 'a serves again');
          const late = await a.run(`deploy cutover notes --confirm ${code}`);
          assert.notEqual(late.exitCode, 0);
          assert.match(late.stderr, /no paired cutover of notes waits/);
          assert.match(
            await runOrThrow(a, `cat ${quoteWord(`${hostA.stateDir}/apps/notes/migrations/${runId}.jsonl`)}`),
            /"step":"resumed"/,
          );
          assert.match(
            await runOrThrow(a, `cat ${quoteWord(`${uploadsA}/new.txt`)}`),
            /after the pairing/,
            'nothing written on a is lost',
          );
        } finally {
          writeFileSync(manifestPath, manifest);
        }
      },
    );

    await t.test(
      "a paired cutover: b applies exactly the delta, files and rows equal; a stays stopped until --confirm with b's code, then is moved",
      async (st) => {
        // A row written after the failed attempt reaches b too.
        await runOrThrow(
          a,
          `psql -X -q -d notes -c "INSERT INTO notes (title, body) VALUES ('after the rollback', 'kept')"`,
        );
        const { source, link, code, runId } = await startPairing('--wait 120', '', 'cutover');
        const target = await receiveOnB(link, code);
        assert.equal(await target.done, 0, `b:\n${target.output().slice(-4000)}`);
        assert.equal(await source.done, 0, `a:\n${source.output().slice(-4000)}`);
        assert.match(
          target.output(),
          /Cut over notes from a in [\d.]+ s: the delta applied, verified, started and healthy/,
        );
        assert.match(source.output(), /Delivered the cutover of notes to the new host/);
        // new.txt added, change.txt changed, delete.txt removed: exactly these.
        assert.match(source.output(), /uploads: 1 added, 1 changed, 1 removed/);
        const [, confirm] = CONFIRM.exec(target.output()) ?? [];
        assert.ok(confirm, `b shows the command with its code:\n${target.output().slice(-2000)}`);
        // Files and rows equal on both hosts (a takes no writes: it is in maintenance).
        assert.deepEqual(
          diffTreeFingerprints(await treeFingerprint(a, uploadsA), await treeFingerprint(b, uploadsB)),
          [],
        );
        assert.doesNotMatch(await runOrThrow(b, `ls ${quoteWord(uploadsB)}`), /delete\.txt/);
        assert.equal(await notesRows(b), await notesRows(a));
        assert.match(await notesRows(b), /after the rollback/);
        await runOrThrow(b, 'deploy health notes');
        // The write-stop window, which no host sees whole: a's stop (its pending mark) to b's health checks passing (one clock here).
        const pending = JSON.parse(readFileSync(`${hostA.stateDir}/apps/notes/cutover-pending.json`, 'utf8')) as {
          stoppedAt: string;
          runId: string;
        };
        assert.equal(pending.runId, runId);
        const healthy = (await readTargetJournal(`${hostB.stateDir}/apps/notes/incoming/${runId}.jsonl`)).filter(
          (line) =>
            (line as { step?: string; status?: string }).step === 'health' &&
            (line as { status?: string }).status === 'ok',
        );
        const windowMs =
          Date.parse((healthy.at(-1) as unknown as { time: string }).time) - Date.parse(pending.stoppedAt);
        assert.ok(windowMs > 0, `window ${windowMs} ms`);
        st.diagnostic(`paired cutover: writes stopped on a for ${(windowMs / 1000).toFixed(1)} s until b was healthy`);
        // a stays stopped and unmarked until its operator types b's code.
        assert.equal(await pageOfA(), 503);
        const listed = await runOrThrow(a, 'deploy list');
        assert.doesNotMatch(listed, /moved/);
        assert.match(listed, /stopped: cutover to the new host pending/);
        const confirmed = await a.run(`deploy cutover notes --confirm ${confirm!.toLowerCase()}`);
        assert.equal(confirmed.exitCode, 0, confirmed.stderr);
        assert.match(confirmed.stdout, /Confirmed the cutover of notes to the new host/);
        assert.match(await runOrThrow(a, 'deploy list'), /moved to the new host/);
        const start = await a.run('deploy start notes');
        assert.equal(start.exitCode, 7, start.stderr);
        assert.ok(!containsSecret(source.output(), confirm!), 'a never saw the confirmation code before it was typed');
      },
    );
  });
});
