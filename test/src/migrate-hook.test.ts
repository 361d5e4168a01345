// A minimal app (no database, one volume) on two lab hosts: the default migrate end to end in seconds,
// and an app's own bin/migrate that replaces the default steps (exit 0) with the documented environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quoteWord } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import { labShell, runOrThrow, treeFingerprint, diffTreeFingerprints, withLab } from './helpers/index.js';
import { assertExit, deployOnA, parseReport } from './migrate-lab.js';

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

async function makeTinyApp(lab: Lab, migrateScript: string): Promise<void> {
  const a = labShell(lab, 'a');
  const dir = `${lab.host('a').appsRoot}/tiny`;
  const files = Object.entries({ ...SCRIPTS, migrate: migrateScript })
    .map(([phase, body]) => `printf '%s\\n' '#!/usr/bin/env bash' 'set -euo pipefail' ${quoteWord(body)} > bin/${phase} && chmod +x bin/${phase}`)
    .join(' && ');
  await runOrThrow(a, `rm -rf ${dir} && mkdir -p ${dir}/bin ${dir}/data/files/sub && cd ${dir} && cat > app.yaml && ${files}`, APP_YAML);
  await runOrThrow(a, `cd ${dir}/data/files && head -c 300000 /dev/urandom > blob.bin && echo hi > sub/a.txt && ln -s sub/a.txt link && ln blob.bin hard.bin && chmod 640 sub/a.txt`);
}

test('a minimal app: default migrate end to end, then a bin/migrate that replaces the default steps', { timeout: 240_000 }, async (t) => {
  await withLab({ hosts: 2 }, async (lab) => {
    await t.test('exit 75 from bin/migrate: the default steps move the volume byte-identical', async () => {
      await makeTinyApp(lab, 'echo "target=$DEPLOY_MIGRATE_TARGET transport=$DEPLOY_MIGRATE_TRANSPORT role=$DEPLOY_ROLE" > "$DEPLOY_APP_STATE_DIR/hook.env"; exit 75');
      const run = await deployOnA(lab, ['migrate', 'tiny', '--to', 'b', '--json']);
      assertExit(run, 0, 'migrate tiny');
      const report = parseReport(run);
      assert.equal(report.ok, true);
      assert.deepEqual(report.parts.map((part) => part.id), ['files', 'volume:files']);
      const source = await treeFingerprint(lab, 'a', `${lab.host('a').appsRoot}/tiny/data/files`);
      const target = await treeFingerprint(lab, 'b', `${lab.host('b').appsRoot}/tiny/data/files`);
      assert.deepEqual(diffTreeFingerprints(source, target), []);
      const hookEnv = await runOrThrow(labShell(lab, 'a'), `cat ${lab.host('a').stateDir}/apps/tiny/hook.env`);
      assert.equal(hookEnv.trim(), 'target=b transport=ssh role=source');
      // The target's scripts run as the target of this very migration (docs/app-folder.md).
      const installEnv = await runOrThrow(labShell(lab, 'b'), `cat ${lab.host('b').stateDir}/apps/tiny/install.env`);
      assert.equal(installEnv.trim(), `role=target run=${report.runId}`);
    });

    await t.test('exit 0 from bin/migrate: the app did it itself, no default step runs', async () => {
      await runOrThrow(labShell(lab, 'b'), `rm -rf ${lab.host('b').appsRoot}/tiny`);
      await makeTinyApp(lab, 'echo "custom migration to $DEPLOY_MIGRATE_TARGET, run record $DEPLOY_MIGRATE_RUN_RECORD"; exit 0');
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
      assert.match(run.stdout, /tiny:migrate \(the app's own bin\/migrate\) failed: exited with code 3\nrefusing: maintenance window closed/);
      const onB = await lab.ssh('b', `ls -A ${lab.host('b').appsRoot}`);
      assert.equal(onB.stdout.trim(), '');
    });
  });
});
