import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { quoteArgv } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import { runDeployOnHost, runDeployJsonOnHost, shOk, startNotesLab, UPLOADS } from './health-lab.js';

interface UpdateJson {
  ok: boolean;
  status: string;
  archive: string;
  snapshotDir: string;
  reason?: string;
  steps: { step: string; status: string; detail?: string }[];
  rollbackHealth: { name: string; status: string }[];
}

let lab: Lab;
let appDir: string;
let releases: string;
before(async () => {
  lab = await startNotesLab(1);
  appDir = `${lab.host('a').appsRoot}/notes`;
  releases = `${lab.host('a').root}/releases`;
});
after(async () => {
  await lab?.down();
});

/** Makes a release folder from the running app folder (code only), then lets `edit` change it. */
async function makeRelease(name: string, edit: string): Promise<string> {
  const dir = `${releases}/${name}`;
  await shOk(
    lab,
    'a',
    `mkdir -p ${quoteArgv([releases])} && cp -a ${quoteArgv([appDir, dir])} && rm -rf ${quoteArgv([`${dir}/data`, `${dir}/secrets`])} && cd ${quoteArgv([dir])} && ${edit}`,
  );
  return dir;
}

test('an update whose new version passes health is kept', async () => {
  const release = await makeRelease('good', `printf 'User-agent: *\\nDisallow: /v2\\n' > app/public/robots.txt`);
  const { exitCode, json } = await runDeployJsonOnHost<UpdateJson>(lab, 'a', ['update', 'notes', '--from', release]);
  assert.equal(exitCode, 0, JSON.stringify(json, null, 2));
  assert.equal(json.status, 'updated');
  assert.deepEqual(
    json.steps.map((s) => `${s.step}:${s.status}`),
    [
      'bin/backup:ok',
      'snapshot app folder:ok',
      `copy new version from ${release}:ok`,
      'bin/update:skipped',
      'bin/install:ok',
      'bin/stop:ok',
      'bin/start:ok',
    ],
  );
  const robots = await shOk(lab, 'a', `curl -fsS http://${lab.host('a').address}:8080/static/robots.txt`);
  assert.equal(robots, 'User-agent: *\nDisallow: /v2\n');
  // The safety archive exists in the app's Borg repository.
  const health = await runDeployOnHost(lab, 'a', ['health', 'notes']);
  assert.equal(health.exitCode, 0, health.stdout);
});

test('an update whose new version fails health is rolled back, and the app serves as before', async () => {
  const serverBefore = await shOk(lab, 'a', `sha256sum ${quoteArgv([`${appDir}/app/server.js`])} | cut -d' ' -f1`);
  // A note written before the update must survive the rollback (bin/restore from the safety archive).
  await shOk(
    lab,
    'a',
    `psql -X -q -d notes -c "SET ROLE notes_app; INSERT INTO notes (title, body, author_id) SELECT 'Before the update', '', id FROM users LIMIT 1"`,
  );
  // The broken version: /healthz answers 503, and bin/start gives up after 5 s instead of 30.
  const release = await makeRelease(
    'broken',
    `sed -i 's|^async function handleHealth(response) {|async function handleHealth(response) { return sendJson(response, 503, { status: "broken" });|' app/server.js && grep -q '"broken"' app/server.js && echo START_WAIT_SECONDS=5 >> config/app.env`,
  );
  const started = Date.now();
  const { exitCode, json } = await runDeployJsonOnHost<UpdateJson>(lab, 'a', ['update', 'notes', '--from', release]);
  console.log(`broken update + rollback: ${Date.now() - started} ms`);
  assert.equal(exitCode, 1, JSON.stringify(json, null, 2));
  assert.equal(json.status, 'rolled-back');
  assert.match(
    json.reason ?? '',
    /^bin\/start failed.*Rolled back: the previous code and the data of archive notes-\d{8}T\d{6}Z serve again\.$/,
  );
  assert.deepEqual(
    json.steps.map((s) => `${s.step}:${s.status}`),
    [
      'bin/backup:ok',
      'snapshot app folder:ok',
      `copy new version from ${release}:ok`,
      'bin/update:skipped',
      'bin/install:ok',
      'bin/stop:ok',
      'bin/start:failed',
      'bin/stop:skipped',
      'restore previous app folder:ok',
      'bin/restore:ok',
      'bin/start:ok',
    ],
  );
  assert.ok(
    json.rollbackHealth.every((check) => check.status === 'ok'),
    JSON.stringify(json.rollbackHealth),
  );
  // The previous code is back byte for byte, and so is the config.
  assert.equal(
    await shOk(lab, 'a', `sha256sum ${quoteArgv([`${appDir}/app/server.js`])} | cut -d' ' -f1`),
    serverBefore,
  );
  assert.doesNotMatch(await shOk(lab, 'a', `cat ${quoteArgv([`${appDir}/config/app.env`])}`), /START_WAIT_SECONDS=5/);
  // It serves as before: healthz, the data, the uploads.
  const address = lab.host('a').address;
  assert.match(await shOk(lab, 'a', `curl -fsS http://${address}:8080/healthz`), /"status":"ok"/);
  assert.match(await shOk(lab, 'a', `curl -fsS http://${address}:8080/notes-public`), /Before the update/);
  assert.equal(await shOk(lab, 'a', `curl -fsS http://${address}:8080/uploads/a-first.txt`), UPLOADS['a-first.txt']);
  // The text form says so plainly (run a second broken update through the table renderer).
  const text = await runDeployOnHost(lab, 'a', ['update', 'notes', '--from', release]);
  assert.equal(text.exitCode, 1);
  assert.match(text.stdout, /^UPDATE ROLLED BACK: bin\/start failed/m);
  assert.match(text.stdout, /health after the rollback:\nCHECK/);
});
