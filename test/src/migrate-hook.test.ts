// A minimal app (no database, one volume) on two lab hosts: the default migrate end to end in seconds,
// and an app's own bin/migrate that replaces the default steps (exit 0) with the documented environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDeployEvent, quoteWord } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import { labShell, runOrThrow, treeFingerprint, diffTreeFingerprints, withLab } from './helpers/index.js';
import { assertExit, deployOnA, parseReport, type MigrateReportJson } from './migrate-lab.js';

const APP_YAML = `name: tiny
runtime: process
volumes:
  - name: files
    path: data/files
borg:
  repository: "{state_dir}/borg/{app}"
  archive: "{app}-{now}"
`;

/** Scripts of the tiny app: backup makes a real (unencrypted) Borg archive of its volume. */
const SCRIPTS: Record<string, string> = {
  install: 'mkdir -p data/files; echo "role=$DEPLOY_ROLE run=$DEPLOY_RUN_ID" > "$DEPLOY_APP_STATE_DIR/install.env"',
  start: 'exit 0',
  stop: 'exit 75',
  backup: [
    'export BORG_REPO="$DEPLOY_BORG_REPO" BORG_BASE_DIR="$DEPLOY_APP_STATE_DIR/borg" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes',
    'borg info >/dev/null 2>&1 || borg init --make-parent-dirs -e none',
    'borg create "::$DEPLOY_BORG_ARCHIVE" data/files',
  ].join('\n'),
  restore: 'exit 75',
};

/**
 * A ProxyCommand for ssh (`node pace.mjs HOST PORT BYTES_PER_SECOND`): connects to HOST:PORT and
 * passes what ssh sends at most at that rate (what comes back is not paced).
 */
const PACE_SCRIPT = `import { connect } from 'node:net';
const [host, port, rate] = process.argv.slice(2);
const socket = connect(Number(port), host);
// Paced from the start of the current burst: time the link sat idle (the backup before the part) is no
// credit, or the first seconds' worth of the part would pass at full speed.
let burstStart = Date.now();
let sent = 0;
process.stdin.on('data', (chunk) => {
  const now = Date.now();
  if ((sent * 1000) / Number(rate) < now - burstStart - 200) {
    burstStart = now;
    sent = 0;
  }
  socket.write(chunk);
  sent += chunk.length;
  const ahead = (sent * 1000) / Number(rate) - (Date.now() - burstStart);
  if (ahead > 0) {
    process.stdin.pause();
    setTimeout(() => process.stdin.resume(), ahead);
  }
});
process.stdin.on('end', () => socket.end());
socket.pipe(process.stdout);
socket.on('close', () => process.exit(0));
socket.on('error', () => process.exit(255));
`;

/** A byte count and a duration as deploy prints them (`64.0 KiB`, `12 B`; `850 ms`, `4.0 s`, `2m54s`). */
const BYTES = String.raw`\d+(\.\d)? (B|KiB|MiB)`;
const DURATION = String.raw`(\d+ ms|\d+\.\d s|\d+m\d\ds)`;

/** The text a terminal shows, roughly: without colour and cursor escapes. */
function stripEscapes(screen: string): string {
  return screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}

async function makeTinyApp(lab: Lab, migrateScript: string): Promise<void> {
  const a = labShell(lab, 'a');
  const dir = `${lab.host('a').appsRoot}/tiny`;
  const files = Object.entries({ ...SCRIPTS, migrate: migrateScript })
    .map(
      ([phase, body]) =>
        `printf '%s\\n' '#!/usr/bin/env bash' 'set -euo pipefail' ${quoteWord(body)} > bin/${phase} && chmod +x bin/${phase}`,
    )
    .join(' && ');
  await runOrThrow(
    a,
    `rm -rf ${dir} && mkdir -p ${dir}/bin ${dir}/data/files/sub && cd ${dir} && cat > app.yaml && ${files}`,
    APP_YAML,
  );
  await runOrThrow(
    a,
    `cd ${dir}/data/files && head -c 300000 /dev/urandom > blob.bin && echo hi > sub/a.txt && ln -s sub/a.txt link && ln blob.bin hard.bin && chmod 640 sub/a.txt`,
  );
}

test('a minimal app: default migrate end to end, then a bin/migrate that replaces the default steps', {
  timeout: 420_000,
}, async (t) => {
  await withLab({ hosts: 2 }, async (lab) => {
    await t.test('exit 75 from bin/migrate: the default steps move the volume byte-identical', async () => {
      await makeTinyApp(
        lab,
        'echo "target=$DEPLOY_MIGRATE_TARGET transport=$DEPLOY_MIGRATE_TRANSPORT role=$DEPLOY_ROLE" > "$DEPLOY_APP_STATE_DIR/hook.env"; exit 75',
      );
      const run = await deployOnA(lab, ['migrate', 'tiny', '--to', 'b', '--json']);
      assertExit(run, 0, 'migrate tiny');
      const report = parseReport(run);
      assert.equal(report.ok, true);
      assert.deepEqual(
        report.parts.map((part) => part.id),
        ['files', 'volume:files'],
      );
      const source = await treeFingerprint(lab, 'a', `${lab.host('a').appsRoot}/tiny/data/files`);
      const target = await treeFingerprint(lab, 'b', `${lab.host('b').appsRoot}/tiny/data/files`);
      assert.deepEqual(diffTreeFingerprints(source, target), []);
      const hookEnv = await runOrThrow(labShell(lab, 'a'), `cat ${lab.host('a').stateDir}/apps/tiny/hook.env`);
      assert.equal(hookEnv.trim(), 'target=b transport=ssh role=source');
      // The target's scripts run as the target of this very migration (docs/app-folder.md).
      const installEnv = await runOrThrow(labShell(lab, 'b'), `cat ${lab.host('b').stateDir}/apps/tiny/install.env`);
      assert.equal(installEnv.trim(), `role=target run=${report.runId}`);
    });

    await t.test(
      'watched: on a terminal the live view shows steps, parts, bytes and ETA; off one plain lines with progress; deploy runs lists both and shows their reports',
      async () => {
        // 16 MiB through ssh to b at 3 MiB/s (a ProxyCommand that paces what a sends; ssh and the kernel
        // buffer some MiB more): the volume part takes seconds, so the view and the plain progress line find it in flight.
        const a = labShell(lab, 'a');
        const root = lab.host('a').root;
        await runOrThrow(a, `head -c 16777216 /dev/urandom > ${lab.host('a').appsRoot}/tiny/data/files/big.bin`);
        await runOrThrow(a, `cat > ${root}/pace.mjs`, PACE_SCRIPT);
        await runOrThrow(
          a,
          `printf 'Include %s\\nHost b\\n  ProxyCommand %s %s %%h %%p 3145728\\n' ${quoteWord(lab.sshConfigPath)} ${quoteWord(process.execPath)} ${root}/pace.mjs > ${root}/paced_ssh_config && sed 's#ssh_config: .*#ssh_config: ${root}/paced_ssh_config#' "$DEPLOY_CONFIG" > ${root}/paced.yaml`,
        );
        const migrateOnA = (prefix: string): Promise<string> =>
          runOrThrow(labShell(lab, 'b'), `rm -rf ${lab.host('b').appsRoot}/tiny`).then(() =>
            lab.ssh('a', `${prefix}`).then((run) => {
              assert.equal(run.exitCode, 0, `${prefix}\n${run.stdout}\n${run.stderr}`);
              return run.stdout + run.stderr;
            }),
          );

        const started = Date.now();
        const screen = await migrateOnA(
          `script -qfec ${quoteWord(`deploy --config ${root}/paced.yaml migrate tiny --to b`)} /dev/null`,
        );
        const text = stripEscapes(screen);
        assert.match(screen, /\x1b\[\d*A/, 'the view redraws in place (cursor up)');
        assert.match(text, /migrating tiny to b over ssh/);
        assert.match(
          text,
          new RegExp(`> send:volume:files +${BYTES} of 16\\.\\d MiB \\(\\d+%\\) +${BYTES}/s +ETA ${DURATION}`),
          'the part in flight: bytes of its total, rate, ETA',
        );
        assert.match(
          text,
          new RegExp(`bundle ${BYTES} of 16\\.\\d MiB \\(\\d+%\\), [01] of 2 parts {2}\\| {2}path ssh`),
          'the bundle: bytes of all parts, parts done, the path',
        );
        assert.match(text, /\+ backup /, 'a step done');
        assert.match(text, /Migrated tiny to b in .*Cutover checklist/, 'the report after the view');
        t.diagnostic(`paced migration on a terminal: ${Date.now() - started} ms`);

        const plain = await migrateOnA(
          `DEPLOY_PROGRESS_SECONDS=1 deploy --config ${root}/paced.yaml migrate tiny --to b 2>&1`,
        );
        assert.doesNotMatch(plain, /\x1b/, 'off a terminal: no escape codes');
        assert.match(plain, /^tiny > \[backup\] /m, 'the step lines of today');
        assert.match(
          plain,
          new RegExp(
            `^tiny > progress: part 2 of 2 volume:files: ${BYTES} of 16\\.\\d MiB \\(\\d+%\\), ${BYTES}/s, ETA ${DURATION}; bundle ${BYTES} of 16\\.\\d MiB \\(\\d+%\\); path ssh$`,
            'm',
          ),
        );

        const runs = await runOrThrow(a, 'deploy runs tiny');
        const migrations = runs.split('\n').filter((line) => / migrate +tiny +b +ok /.test(line));
        assert.equal(migrations.length, 3, `three migrations of tiny to b so far:\n${runs}`);
        const lastId = migrations[2]!.split(' ')[0]!;
        const shown = await runOrThrow(a, `deploy runs show ${lastId}`);
        const report = plain.slice(plain.indexOf('PART'));
        assert.equal(shown, report, 'runs show prints the report as the run printed it');
        const json = JSON.parse(await runOrThrow(a, `deploy runs show ${lastId} --json`)) as MigrateReportJson;
        assert.equal(json.runId, lastId);
        assert.deepEqual(
          json.parts.map((part) => part.id),
          ['files', 'volume:files'],
        );
        await runOrThrow(
          a,
          `rm -f ${lab.host('a').appsRoot}/tiny/data/files/big.bin ${root}/pace.mjs ${root}/paced_ssh_config ${root}/paced.yaml`,
        );

        // --jsonl: nothing but events on stdout, the plan, both parts, the target's relayed steps and the report.
        const jsonl = (await migrateOnA('deploy migrate tiny --to b --jsonl 2>/dev/null')).trim().split('\n');
        const events = jsonl.map((line) => parseDeployEvent(line));
        assert.ok(
          events.every((item) => item !== undefined),
          `every stdout line is an event:\n${jsonl.filter((line) => parseDeployEvent(line) === undefined).join('\n')}`,
        );
        const types = events.map((item) => item!.type);
        assert.deepEqual(
          (events.find((item) => item!.type === 'migrate.plan')!.data!.steps as { id: string }[]).map(
            (step) => step.id,
          ),
          ['lock', 'connect', 'backup', 'contents', 'send:files', 'send:volume:files', 'trailer', 'target'],
        );
        assert.deepEqual(
          events.filter((item) => item!.type === 'migrate.part').map((item) => item!.stream),
          ['files', 'volume:files'],
        );
        assert.ok(
          events.some((item) => item!.type === 'receive.step' && item!.app === 'tiny@b'),
          types.join(' '),
        );
        assert.equal(types.at(-1), 'migrate.report');
        assert.equal((events.at(-1)!.data!.report as { ok: boolean }).ok, true);
      },
    );

    await t.test('exit 0 from bin/migrate: the app did it itself, no default step runs', async () => {
      await runOrThrow(labShell(lab, 'b'), `rm -rf ${lab.host('b').appsRoot}/tiny`);
      await makeTinyApp(
        lab,
        'echo "custom migration to $DEPLOY_MIGRATE_TARGET, run record $DEPLOY_MIGRATE_RUN_RECORD"; exit 0',
      );
      const run = await deployOnA(lab, ['migrate', 'tiny', '--to', 'b']);
      assertExit(run, 0, 'migrate tiny with a replacing hook');
      assert.match(run.stdout, /bin\/migrate did the migration itself \(exit 0\); default steps skipped/);
      assert.match(run.stderr, /custom migration to b, run record \/.*\/apps\/tiny\/migrations\/.*\.jsonl/);
      const onB = await lab.ssh('b', `test -e ${lab.host('b').appsRoot}/tiny && echo present || echo absent`);
      assert.equal(onB.stdout.trim(), 'absent', 'the default steps must not have run');
    });

    await t.test('a failing bin/migrate stops the migration before anything changes', async () => {
      await makeTinyApp(lab, 'echo "refusing: maintenance window closed" >&2; exit 3');
      const run = await deployOnA(lab, ['migrate', 'tiny', '--to', 'b']);
      assertExit(run, 4, 'migrate tiny with a failing hook');
      assert.match(
        run.stdout,
        /tiny:migrate \(the app's own bin\/migrate\) failed: exited with code 3\nrefusing: maintenance window closed/,
      );
      const onB = await lab.ssh('b', `ls -A ${lab.host('b').appsRoot}`);
      assert.equal(onB.stdout.trim(), '');
    });
  });
});
