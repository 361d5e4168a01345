// `deploy runs` and `deploy runs show` on the run summaries real runs of the built CLI left: an app
// whose stop works, one whose stop fails, a restore of an app that does not exist (an error, not a
// report), and a list (which records nothing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const bin = fileURLToPath(new URL('../../../bin/deploy.js', import.meta.url));

test('deploy runs lists the runs with outcome and time; runs show prints the report again, --json as recorded', async () => {
  const root = mkdtempSync(join(tmpdir(), 'deploy-runs-'));
  const deploy = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await promisify(execFile)(
        process.execPath,
        [bin, '--apps-root', join(root, 'apps'), '--state-dir', join(root, 'state'), ...args],
        { env: { ...process.env, NO_COLOR: '1' } },
      );
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };
  try {
    for (const [app, stop] of [
      ['fine', 'echo stopped'],
      ['broken', 'echo cannot >&2; exit 3'],
    ] as const) {
      mkdirSync(join(root, 'apps', app, 'bin'), { recursive: true });
      writeFileSync(join(root, 'apps', app, 'app.yaml'), `name: ${app}\n`);
      for (const phase of ['install', 'start', 'stop', 'backup', 'restore']) {
        writeFileSync(join(root, 'apps', app, 'bin', phase), `#!/bin/sh\n${phase === 'stop' ? stop : 'exit 0'}\n`);
        chmodSync(join(root, 'apps', app, 'bin', phase), 0o755);
      }
    }
    // One after another: the list is ordered by start. `list` records nothing.
    const [fine, list] = await Promise.all([deploy('stop', 'fine'), deploy('list')]);
    assert.equal(fine.code, 0, fine.stderr);
    assert.equal(list.code, 0, list.stderr);
    assert.equal((await deploy('stop', 'broken')).code, 4, 'a script failed');
    const missing = await deploy('restore', 'nope');
    assert.equal(missing.code, 3, missing.stderr);

    const [listed, ofFine, listedJson, unknown] = await Promise.all([
      deploy('runs'),
      deploy('runs', 'fine'),
      deploy('runs', '--json'),
      deploy('runs', 'show', 'nothing-like-it'),
    ]);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trim().split('\n');
    assert.match(lines[0]!, /^RUN +STARTED +COMMAND +APP +TARGET +OUTCOME +TIME$/);
    assert.equal(lines.length, 4, listed.stdout);
    assert.match(lines[1]!, /^\S+ +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +stop +fine +- +ok +\d/);
    assert.match(lines[2]!, / stop +broken +- +failed \(exit 4\) /);
    assert.match(lines[3]!, / restore +nope +- +failed \(exit 3\) /);
    assert.equal(ofFine.stdout.trim().split('\n').length, 2);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no run nothing-like-it in .*\/state\/runs/);

    const json = JSON.parse(listedJson.stdout) as {
      runs: { runId: string; command: string; outcome: string; durationMs: number; deployVersion: string }[];
    };
    assert.deepEqual(
      json.runs.map((run) => [run.command, run.outcome]),
      [
        ['stop', 'ok'],
        ['stop', 'failed'],
        ['restore', 'failed'],
      ],
    );
    const [fineRun, , missingRun] = json.runs;
    assert.equal(statSync(join(root, 'state', 'runs', `${fineRun!.runId}.json`)).mode & 0o777, 0o600);

    const [shown, shownAsJson, error] = await Promise.all([
      deploy('runs', 'show', fineRun!.runId),
      deploy('runs', 'show', fineRun!.runId, '--json'),
      deploy('runs', 'show', missingRun!.runId),
    ]);
    assert.equal(shown.stdout, fine.stdout, 'the report as the run printed it');
    const shownJson = JSON.parse(shownAsJson.stdout) as { results: { app: string; status: string }[] };
    assert.deepEqual(
      shownJson.results.map((result) => [result.app, result.status]),
      [['fine', 'ok']],
    );
    assert.equal(error.stdout, `${missing.stderr.trim()}\n`, 'an error run shows the error as it was printed');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
