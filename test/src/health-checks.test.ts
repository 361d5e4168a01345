import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { quoteArgv } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import {
  pickCheck,
  runDeployOnHost,
  runDeployJsonOnHost,
  shOk,
  startNotesLab,
  UPLOADS,
  type CheckJson,
} from './health-lab.js';

interface HealthJson {
  ok: boolean;
  checks: CheckJson[];
}

let lab: Lab;
let appDir: string;
before(async () => {
  lab = await startNotesLab(1);
  appDir = `${lab.host('a').appsRoot}/notes`;
});
after(async () => {
  await lab?.down();
});

const health = (args: string[] = [], input?: string) =>
  runDeployJsonOnHost<HealthJson>(lab, 'a', ['health', 'notes', ...args], input);

test('every check of the sample app passes on a healthy install, and says what it saw', async () => {
  const { exitCode, json } = await health();
  assert.equal(
    exitCode,
    0,
    JSON.stringify(
      json.checks.filter((c) => c.status !== 'ok'),
      null,
      2,
    ),
  );
  assert.deepEqual(
    json.checks.map((c) => [c.type, c.status]),
    [
      ['http', 'ok'],
      ['static', 'ok'],
      ['uploads', 'ok'],
      ['db-page', 'ok'],
      ['login', 'ok'],
      ['logs', 'ok'],
      ['process', 'ok'],
    ],
  );
  const uploads = pickCheck(json, 'uploads');
  const sample = uploads.facts?.sample as { name: string; bytes: number }[];
  // Four files, a dotfile skipped; all four sampled (sample: 5), in code-point order.
  assert.deepEqual(
    sample.map((file) => file.name),
    Object.keys(UPLOADS).sort(),
  );
  assert.equal(uploads.facts?.count, 4);
  assert.equal(sample.find((file) => file.name === 'c-report.txt')?.bytes, 70_000);
  assert.match(String(pickCheck(json, 'notes page').facts?.sha256), /^[0-9a-f]{64}$/);
  // The table form names every check.
  const table = await runDeployOnHost(lab, 'a', ['health', 'notes']);
  assert.equal(table.exitCode, 0);
  assert.match(table.stdout, /^CHECK\s+TYPE\s+RESULT\s+TIME\s+REASON/m);
  assert.match(table.stdout, /admin login\s+login\s+ok/);
  assert.match(table.stdout, /7 ok, 0 failed/);
});

test('uploads: a removed or altered upload fails against the baseline, naming the file', async () => {
  const baseline = (await health(['--check', 'uploads'])).json;
  assert.equal(pickCheck(baseline, 'uploads').status, 'ok');
  const uploads = `${appDir}/data/uploads`;
  await shOk(lab, 'a', `mv ${quoteArgv([`${uploads}/b-photo.json`, `${uploads}/.moved-away`])}`);
  await shOk(lab, 'a', `echo tampered >> ${quoteArgv([`${uploads}/d-notes.txt`])}`);
  try {
    const { exitCode, json } = await health(['--check', 'uploads', '--baseline=-'], JSON.stringify(baseline));
    assert.equal(exitCode, 1);
    const check = pickCheck(json, 'uploads');
    assert.equal(check.status, 'failed');
    assert.match(check.reason ?? '', /b-photo\.json: not readable on disk \(ENOENT\)/);
    assert.match(check.reason ?? '', /b-photo\.json: GET http:\/\/[\d.]+:8080\/uploads\/b-photo\.json answered 404/);
    assert.match(check.reason ?? '', /d-notes\.txt: sha256 [0-9a-f]{12} \(16 bytes\) differs from the baseline's/);
    // Without a baseline the volume is consistent with what is served: 3 files sampled, ok.
    const plain = await health(['--check', 'uploads']);
    assert.equal(plain.exitCode, 0);
    assert.equal(pickCheck(plain.json, 'uploads').facts?.count, 3);
  } finally {
    await shOk(
      lab,
      'a',
      `mv ${quoteArgv([`${uploads}/.moved-away`, `${uploads}/b-photo.json`])}; printf 'fourth\\n' > ${quoteArgv([`${uploads}/d-notes.txt`])}`,
    );
  }
  assert.equal((await health(['--check', 'uploads', '--baseline=-'], JSON.stringify(baseline))).exitCode, 0);
});

test('uploads: a file above max_bytes is checked by its size and its first max_bytes; truncated or altered there, it fails', async () => {
  const big = `${appDir}/data/uploads/e-big.bin`;
  // 6 MiB: above the default max_bytes (4 MiB), so its prefix is hashed and the rest not downloaded.
  await shOk(lab, 'a', `head -c 6291456 /dev/urandom > ${quoteArgv([big])}`);
  try {
    const baseline = (await health(['--check', 'uploads'])).json;
    const check = pickCheck(baseline, 'uploads');
    assert.equal(check.status, 'ok', check.reason);
    const sampled = (check.facts?.sample as { name: string; bytes: number; hashedBytes?: number }[] | undefined)?.find(
      (file) => file.name === 'e-big.bin',
    );
    assert.deepEqual([sampled?.bytes, sampled?.hashedBytes], [6291456, 4194304]);
    const against = async (): Promise<CheckJson> => {
      const { json } = await health(['--check', 'uploads', '--baseline=-'], JSON.stringify(baseline));
      return pickCheck(json, 'uploads');
    };
    await shOk(lab, 'a', `cp ${quoteArgv([big, `${big}.orig`])} && truncate -s -1 ${quoteArgv([big])}`);
    const truncated = await against();
    assert.equal(truncated.status, 'failed');
    assert.match(
      truncated.reason ?? '',
      /e-big\.bin: sha256 of the first 4194304 bytes [0-9a-f]{12} \(6291455 bytes\) differs from the baseline's [0-9a-f]{12} \(6291456 bytes\)/,
    );
    await shOk(
      lab,
      'a',
      `cp ${quoteArgv([`${big}.orig`, big])} && printf X | dd of=${quoteArgv([big])} bs=1 seek=4000000 conv=notrunc status=none`,
    );
    const altered = await against();
    assert.equal(altered.status, 'failed');
    assert.match(
      altered.reason ?? '',
      /e-big\.bin: sha256 of the first 4194304 bytes [0-9a-f]{12} \(6291456 bytes\) differs from the baseline's/,
    );
    await shOk(lab, 'a', `cp ${quoteArgv([`${big}.orig`, big])}`);
    assert.equal((await against()).status, 'ok');
  } finally {
    await shOk(lab, 'a', `rm -f ${quoteArgv([big, `${big}.orig`])}`);
  }
});

test('login: a wrong secret fails with the redirect it got; the right one passes again', async () => {
  const credentials = `${appDir}/secrets/admin.credentials`;
  const original = await shOk(lab, 'a', `cat ${quoteArgv([credentials])}`);
  assert.match(original, /^username=admin\npassword=\S+\n$/);
  await shOk(lab, 'a', `sed -i 's/^password=.*/password=not-the-password/' ${quoteArgv([credentials])}`);
  try {
    const { exitCode, json } = await health(['--check', 'admin login']);
    assert.equal(exitCode, 1);
    const check = pickCheck(json, 'admin login');
    assert.equal(check.status, 'failed');
    assert.match(
      check.reason ?? '',
      /POST \/login as admin, then GET \/notes: expected the protected page containing "Signed in as admin", got a redirect to \/login \(not signed in; the login answered 401\)/,
    );
    assert.doesNotMatch(JSON.stringify(json), /not-the-password/, 'the password never appears in results');
  } finally {
    await lab.ssh('a', `cat > ${quoteArgv([credentials])}`, { input: original });
  }
  // Upper-case keys work too.
  await lab.ssh('a', `cat > ${quoteArgv([credentials])}`, {
    input: original.replace('username=', 'USERNAME=').replace('password=', 'PASSWORD='),
  });
  try {
    assert.equal((await health(['--check', 'admin login'])).exitCode, 0);
  } finally {
    await lab.ssh('a', `cat > ${quoteArgv([credentials])}`, { input: original });
  }
});

test('logs: a permission error written since the start fails the scan with the line', async () => {
  const line = `${new Date().toISOString()} error GET /uploads/x: EACCES permission denied, open '/srv/x'`;
  await shOk(lab, 'a', `echo ${quoteArgv([line])} >> ${quoteArgv([`${appDir}/data/logs/error.log`])}`);
  const { exitCode, json } = await health(['--check', 'log scan']);
  assert.equal(exitCode, 1);
  const check = pickCheck(json, 'log scan');
  assert.equal(check.status, 'failed');
  assert.ok((check.reason ?? '').includes(`data/logs/error.log: ${line}`), check.reason);
});

test('process: a stopped app fails; a restart clears it and the earlier log error too', async () => {
  assert.equal((await runDeployOnHost(lab, 'a', ['stop', 'notes'])).exitCode, 0);
  const stopped = await health(['--check', 'process']);
  assert.equal(stopped.exitCode, 1);
  assert.match(
    pickCheck(stopped.json, 'process').reason ?? '',
    /expected a pid file .*got none: the app is not running/,
  );
  const start = await runDeployOnHost(lab, 'a', ['start', 'notes']);
  assert.equal(start.exitCode, 0, start.stderr);
  const { exitCode, json } = await health(['--check', 'process', '--check', 'log scan']);
  assert.equal(exitCode, 0, JSON.stringify(json));
  assert.match(pickCheck(json, 'process').reason ?? '', /pid \d+ alive, [\d.]+:8080 answers/);
});

test('db-page: PostgreSQL stopped fails the page; started again it passes', async () => {
  const pgData = `${lab.host('a').root}/pg/data`;
  const pgCtl = (action: string) =>
    shOk(
      lab,
      'a',
      `runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D ${quoteArgv([pgData])} -w -m fast ${action === 'start' ? `-l ${quoteArgv([`${pgData}/restart.log`])} ` : ''}${action}`,
    );
  await pgCtl('stop');
  try {
    const { exitCode, json } = await health(['--check', 'notes page', '--check', 'healthz']);
    assert.equal(exitCode, 1);
    const page = pickCheck(json, 'notes page');
    assert.equal(page.status, 'failed');
    assert.match(page.reason ?? '', /GET http:\/\/[\d.]+:8080\/notes-public: expected status 200, got status 500/);
    assert.match(pickCheck(json, 'healthz').reason ?? '', /expected status 200, got status 503/);
  } finally {
    await pgCtl('start');
  }
  const again = await health(['--check', 'notes page']);
  assert.equal(again.exitCode, 0, JSON.stringify(again.json));
});
