// End to end: a migration of the notes app from lab host a to b, interrupted in every step and killed
// on either side mid-part. After each fault, everything of the run is found by its run id (processes
// by DEPLOY_RUN_ID, paths, staging databases, locks) on both hosts: nothing may be left but the verified
// parts the target keeps for a resume. A plain re-run then succeeds, reuses what was kept (the bytes it
// did not send are counted) and leaves nothing of the failed runs behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { quoteWord } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import {
  DEPLOY_BIN,
  REPO_ROOT,
  buildDeployEnv,
  labShell,
  runOrThrow,
  withLab,
  type DeployRun,
} from './helpers/index.js';
import {
  assertExit,
  deployOnA,
  findRunLeftovers,
  isTargetRun,
  listLabProcesses,
  parseReport,
  waitForProcess,
  type MigrateReportJson,
} from './migrate-lab.js';

/** A `deploy --host a migrate ...` that the test watches (stderr lines) and signals. */
interface WatchedRun {
  /** Resolves once a stderr line matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  signal(signal: NodeJS.Signals): void;
  readonly done: Promise<DeployRun>;
}

function startMigrate(lab: Lab, args: readonly string[]): WatchedRun {
  const child = spawn(
    process.execPath,
    [DEPLOY_BIN, '--config', lab.deployConfigPath, '--host', 'a', 'migrate', 'notes', '--to', 'b', '--json', ...args],
    { cwd: REPO_ROOT, env: buildDeployEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    for (const waiter of [...waiters]) {
      const line = stderr.split('\n').find((candidate) => waiter.pattern.test(candidate));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const done = new Promise<DeployRun>((resolve) =>
    child.on('close', (code, signal) =>
      resolve({ exitCode: code ?? (signal === 'SIGKILL' ? 137 : 143), stdout, stderr }),
    ),
  );
  return {
    waitFor(pattern, timeoutMs = 180_000) {
      const found = stderr.split('\n').find((line) => pattern.test(line));
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`no line matching ${pattern} within ${timeoutMs} ms; stderr so far:\n${stderr.slice(-3000)}`),
            ),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
      });
    },
    signal: (signal) => child.kill(signal),
    done,
  };
}

test('a migration interrupted in every step, or killed on either side mid-part, leaves nothing of the run but verified parts; re-runs resume', {
  timeout: 900_000,
}, async (t) => {
  await withLab({ hosts: 2 }, async (lab) => {
    const a = labShell(lab, 'a');
    const b = labShell(lab, 'b');
    const hostA = lab.host('a');
    const hostB = lab.host('b');
    const appDir = `${hostA.appsRoot}/notes`;
    const failedRuns: string[] = [];

    /** b as a migration found it: no app, no notes database or role, no staging of any run. */
    const targetEmpty = async (): Promise<{ apps: string[]; databases: string; roles: string }> => ({
      apps: readdirSync(hostB.appsRoot).filter((name) => !name.startsWith('.migrate-')),
      databases: (
        await runOrThrow(b, `psql -X -At -d postgres -c "SELECT datname FROM pg_database WHERE datname = 'notes'"`)
      ).trim(),
      roles: (
        await runOrThrow(b, `psql -X -At -d postgres -c "SELECT rolname FROM pg_roles WHERE rolname = 'notes_app'"`)
      ).trim(),
    });
    const emptyTarget = { apps: [], databases: '', roles: '' };

    /** Everything of `runId` on both hosts, but the parts b keeps verified for a resume (its staging root and database). */
    const leftovers = async (runId: string, kept: readonly string[] = []): Promise<string[]> => {
      const found = [...(await findRunLeftovers(lab, 'a', runId)), ...(await findRunLeftovers(lab, 'b', runId))];
      const keptPaths = kept.length > 0 ? [`path ${hostB.appsRoot}/.migrate-notes-${runId}`] : [];
      return found.filter((line) => !keptPaths.includes(line));
    };

    /** After a failed run: what it reports, and that nothing of it is left but what b keeps for a resume. */
    const assertCleanAfter = async (run: DeployRun, exitCode: number, what: string): Promise<MigrateReportJson> => {
      assertExit(run, exitCode, what);
      const report = parseReport(run);
      assert.equal(report.ok, false);
      failedRuns.push(report.runId);
      const kept =
        report.targetReport?.kept ?? report.targetRecovery?.recovered.flatMap((recovered) => recovered.keptParts) ?? [];
      assert.ok(
        kept.every((part) => part.startsWith('volume:') || part === 'database'),
        `only parts made from the archive are kept (${kept.join(', ')})`,
      );
      assert.deepEqual(
        await leftovers(report.runId, kept),
        [],
        `${what}: nothing of run ${report.runId} is left on a or b but the parts kept for a resume`,
      );
      assert.deepEqual(await targetEmpty(), emptyTarget, `${what}: nothing of the app is visible on b`);
      assert.equal(readdirSync(`${hostA.stateDir}/locks`).length, 0, 'the source lock is gone');
      assert.deepEqual(
        listLabProcesses(lab).filter((p) => p.host === 'b' && isTargetRun(p, 'notes')),
        [],
        'no target-side run is running on b',
      );
      return report;
    };

    await t.test(
      'set up notes on a: a 96 MiB upload and 40 MiB of rows (parts that take a while), scripts that pause on request',
      async () => {
        assertExit(await deployOnA(lab, ['init', 'notes']), 0, 'init');
        // A pause switch for the tests: a file in the host's state dir makes the script wait.
        await runOrThrow(
          a,
          `cd ${quoteWord(appDir)} && for s in backup install start; do sed -i 's|^source bin/lib/common.sh$|source bin/lib/common.sh\\nif [ -e "\${DEPLOY_STATE_DIR:-/none}/pause-$SCRIPT_NAME" ]; then sleep 120; fi|' bin/$s; grep -q pause- bin/$s; done`,
        );
        assertExit(await deployOnA(lab, ['install', 'notes']), 0, 'install');
        assertExit(await deployOnA(lab, ['start', 'notes']), 0, 'start');
        await runOrThrow(a, `head -c 96M /dev/urandom > ${quoteWord(`${appDir}/data/uploads/big.bin`)}`);
        await runOrThrow(
          a,
          `psql -X -q -d notes -c "INSERT INTO notes (title, body) SELECT 'bulk ' || g, md5(g::text) || repeat(md5(random()::text), 40) FROM generate_series(1, 30000) g"`,
        );
      },
    );

    const interrupt = async (
      name: string,
      trigger: RegExp,
      options: { pause?: 'a' | 'b'; script?: string; exitCode?: number } = {},
    ): Promise<MigrateReportJson> => {
      const pauseFile = options.pause ? `${lab.host(options.pause).stateDir}/pause-${options.script}` : undefined;
      if (pauseFile) await runOrThrow(labShell(lab, options.pause!), `touch ${quoteWord(pauseFile)}`);
      try {
        const run = startMigrate(lab, ['--retries', '0']);
        await run.waitFor(trigger);
        run.signal('SIGINT');
        const report = await assertCleanAfter(await run.done, options.exitCode ?? 130, `Ctrl+C during ${name}`);
        assert.equal(report.failure?.code, 'INTERRUPTED', JSON.stringify(report.failure));
        return report;
      } finally {
        if (pauseFile) await runOrThrow(labShell(lab, options.pause!), `rm -f ${quoteWord(pauseFile)}`);
      }
    };

    await t.test('Ctrl+C during the backup: the target never got contents; nothing kept', async () => {
      const report = await interrupt('the backup', /notes:backup > notes:backup started/, {
        pause: 'a',
        script: 'backup',
      });
      assert.deepEqual(report.targetReport?.kept, []);
    });

    for (const part of ['files', 'volume:uploads', 'volume:logs', 'roles', 'database']) {
      await t.test(`Ctrl+C while ${part} streams: rolled back on b, verified archive parts kept`, async () => {
        await interrupt(`part ${part}`, new RegExp(`notes@b > \\[receive:${part}\\]`));
      });
    }

    await t.test('Ctrl+C during the commit on b: what it committed is undone', async () => {
      await interrupt('the commit', /notes@b > \[commit\]/);
    });

    await t.test('Ctrl+C during bin/install on b: install is stopped, the commit undone', async () => {
      await interrupt('install', /notes@b > \[install\]/, { pause: 'b', script: 'install' });
    });

    await t.test('Ctrl+C during bin/start on b: start is stopped, the commit undone', async () => {
      await interrupt('start', /notes@b > \[start\]/, { pause: 'b', script: 'start' });
    });

    await t.test(
      'the connection drops in the database part (the bundle is cut off there): no database on b, the verified volumes kept',
      async () => {
        const run = startMigrate(lab, ['--retries', '0']);
        await run.waitFor(/notes@b > \[receive:database\]/);
        // The ssh client carrying the session on a: killing it cuts the bundle off mid-part.
        const session = listLabProcesses(lab).find(
          (p) =>
            p.host === 'a' && p.argv[0] === 'ssh' && (p.argv.at(-1) ?? '').includes('deploy receive notes --from -'),
        );
        assert.ok(
          session,
          `the ssh session of the migration on a: ${listLabProcesses(lab)
            .filter((p) => p.host === 'a' && p.argv[0] === 'ssh')
            .map((p) => p.argv.join(' '))
            .join(' | ')}`,
        );
        process.kill(session.pid, 'SIGKILL');
        const report = await assertCleanAfter(await run.done, 5, 'the connection cut off in the database part');
        assert.equal(report.failure?.stage, 'transport');
        // b's run may still be rolling back when a's recovery arrives: it waits for it, not refuses.
        assert.equal(report.targetRecovery?.ok, true, `a's recovery on b: ${JSON.stringify(report.targetRecovery)}`);
        const kept = report.targetRecovery?.recovered.flatMap((recovered) => recovered.keptParts) ?? [];
        assert.ok(!kept.includes('database'), 'the cut-off database part is not kept');
        assert.equal(
          (
            await runOrThrow(
              b,
              `psql -X -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = 'notes' OR datname LIKE 'dk\\_%'"`,
            )
          ).trim(),
          '0',
          'no database of the run on b, under any name',
        );
      },
    );

    let killedTarget = '';
    await t.test(
      'SIGKILL of the target-side run in the third part: the source has b cleaned up, the verified uploads kept',
      async () => {
        // Afresh (the parts kept by the run before are dropped), so the third part really streams.
        const run = startMigrate(lab, ['--retries', '0', '--no-resume']);
        await run.waitFor(/notes@b > \[receive:volume:logs\]/);
        const receiver = await waitForProcess(
          lab,
          (p) => p.host === 'b' && isTargetRun(p, 'notes'),
          10_000,
          'deploy receive notes on b',
        );
        process.kill(receiver.pid, 'SIGKILL');
        const report = await assertCleanAfter(await run.done, 5, 'SIGKILL of the target-side run');
        assert.equal(report.failure?.stage, 'transport');
        assert.deepEqual(
          report.targetRecovery?.recovered.map((recovered) => [
            recovered.runId,
            recovered.outcome,
            recovered.keptParts,
          ]),
          [[report.runId, 'kept', ['volume:uploads']]],
        );
        killedTarget = report.runId;
      },
    );

    await t.test(
      'a re-run resumes: the kept uploads are not sent again (bytes counted), nothing of any failed run is left',
      async () => {
        const run = await deployOnA(lab, ['migrate', 'notes', '--to', 'b', '--json']);
        assertExit(run, 0, 're-run after the faults');
        const report = parseReport(run);
        assert.equal(report.targetReport?.verification.ok, true);
        assert.deepEqual(report.reused, { fromRun: killedTarget, parts: ['volume:uploads'] });
        const uploads = report.parts.find((part) => part.id === 'volume:uploads')!;
        assert.equal(uploads.status, 'reused');
        assert.ok(uploads.bytes >= 96 * 1024 * 1024, 'the kept part is the whole volume');
        const sent = report.parts.filter((part) => part.status === 'sent').reduce((sum, part) => sum + part.bytes, 0);
        assert.ok(sent < 64 * 1024 * 1024, `only the remaining parts were sent (${sent} bytes)`);
        for (const runId of failedRuns)
          assert.deepEqual(await leftovers(runId), [], `nothing of failed run ${runId} is left after the re-run`);
        assert.equal(
          (
            await runOrThrow(b, `psql -X -At -d notes -c "SELECT count(*) FROM notes WHERE title LIKE 'bulk %'"`)
          ).trim(),
          '30000',
        );
        assert.equal(
          (await runOrThrow(b, `sha256sum < ${quoteWord(`${hostB.appsRoot}/notes/data/uploads/big.bin`)}`)).trim(),
          (await runOrThrow(a, `sha256sum < ${quoteWord(`${appDir}/data/uploads/big.bin`)}`)).trim(),
        );
      },
    );

    await t.test(
      'SIGKILL of the source mid-part: b rolls back by itself; the next run on a cleans up after it',
      async () => {
        await runOrThrow(
          b,
          `${hostB.appsRoot}/notes/bin/stop; rm -rf ${quoteWord(`${hostB.appsRoot}/notes`)}; psql -X -q -d postgres -c "DROP DATABASE notes WITH (FORCE)" -c "DROP ROLE notes_app"`,
        );
        const run = startMigrate(lab, ['--retries', '0']);
        await run.waitFor(/notes@b > \[receive:volume:uploads\]/);
        const source = listLabProcesses(lab).find(
          (p) => p.host === 'a' && p.argv.includes('migrate') && p.argv.includes('notes'),
        )!;
        assert.ok(source, 'the migrate process on a');
        const runId = (
          JSON.parse(await runOrThrow(a, `cat ${quoteWord(`${hostA.stateDir}/locks/notes.lock`)}`)) as { runId: string }
        ).runId;
        process.kill(source.pid, 'SIGKILL');
        await run.done;
        assert.match(runId, /^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
        // b notices its input ended and rolls back on its own.
        const deadline = Date.now() + 60_000;
        while ((await findRunLeftovers(lab, 'b', runId)).length > 0 && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 250));
        assert.deepEqual(await findRunLeftovers(lab, 'b', runId), [], 'b rolled back by itself');
        assert.deepEqual(await targetEmpty(), emptyTarget);
        // The next migrate on a finds the killed run's stale lock and removes what it left there.
        const rerun = await deployOnA(lab, ['migrate', 'notes', '--to', 'b', '--json']);
        assertExit(rerun, 0, 're-run after the source was killed');
        assert.deepEqual(await findRunLeftovers(lab, 'a', runId), [], 'nothing of the killed source run is left on a');
      },
    );
  });
});
