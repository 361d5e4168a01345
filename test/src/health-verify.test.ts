import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { quoteArgv } from '@deploykit/core';
import { verifyApp } from '@deploykit/deploy';
import type { Lab } from '@deploykit/testlab';
import { runDeployOnHost, runDeployJsonOnHost, shOk, startNotesLab } from './health-lab.js';

interface VerifyJson {
  ok: boolean;
  comparisons: { subject: string; status: string; source: string; target: string; reason?: string }[];
}

let lab: Lab;
before(async () => {
  lab = await startNotesLab(2);
});
after(async () => {
  await lab?.down();
});

test('facts: file counts per volume and row counts per table, from the host itself', async () => {
  const { exitCode, json } = await runDeployJsonOnHost<{
    volumes: { name: string; files: number; bytes: number }[];
    database: { tables: Record<string, number> };
  }>(lab, 'b', ['facts', 'notes']);
  assert.equal(exitCode, 0);
  assert.deepEqual(
    json.volumes.find((v) => v.name === 'uploads'),
    { name: 'uploads', path: 'data/uploads', files: 4, bytes: 13 + 13 + 70_000 + 7 },
  );
  assert.equal(json.database.tables['public.users'], 1);
  assert.equal(json.database.tables['public.notes'], 1);
});

test('verify: two identical installs match; a missing upload and an extra note are mismatches', async () => {
  const same = await runDeployJsonOnHost<VerifyJson>(lab, 'a', ['verify', 'notes', '--source', 'a', '--target', 'b']);
  assert.equal(same.exitCode, 0, JSON.stringify(same.json, null, 2));
  const subjects = same.json.comparisons.map((c) => `${c.subject}:${c.status}`);
  for (const expected of [
    'uploads sample uploads:match',
    'db-page notes page digest:match',
    'volume uploads:match',
    'volume logs:skipped',
    'rows public.notes:match',
    'rows public.users:match',
  ]) {
    assert.ok(subjects.includes(expected), `${expected} not in ${subjects.join(', ')}`);
  }
  const table = await runDeployOnHost(lab, 'a', ['verify', 'notes', '--source', 'a', '--target', 'b']);
  assert.equal(table.exitCode, 0, table.stdout + table.stderr);
  assert.match(table.stdout, /ready for the DNS cutover/);

  // Break the target's copy: an upload gone, and the source has a note the target lacks.
  const uploads = `${lab.host('b').appsRoot}/notes/data/uploads`;
  await shOk(lab, 'b', `rm ${quoteArgv([`${uploads}/c-report.txt`])}`);
  await shOk(
    lab,
    'a',
    `psql -X -q -d notes -c "SET ROLE notes_app; INSERT INTO notes (title, body, author_id) SELECT 'Only on a', '', id FROM users LIMIT 1"`,
  );
  const previous = process.env.DEPLOY_CONFIG;
  process.env.DEPLOY_CONFIG = lab.deployConfigPath;
  try {
    const result = await verifyApp({
      app: 'notes',
      source: 'a',
      target: 'b',
      configPath: lab.deployConfigPath,
      ignoreTables: ['sessions'],
    });
    assert.equal(result.ok, false);
    const status = (subject: string) => result.comparisons.find((c) => c.subject === subject);
    assert.equal(status('uploads sample uploads')?.status, 'mismatch');
    assert.match(status('uploads sample uploads')?.reason ?? '', /c-report\.txt/);
    assert.equal(status('health uploads (target)')?.status, 'failed');
    assert.match(status('health uploads (target)')?.reason ?? '', /c-report\.txt: not readable on disk \(ENOENT\)/);
    assert.deepEqual(status('volume uploads'), {
      subject: 'volume uploads',
      status: 'mismatch',
      source: '4 files, 70033 bytes',
      target: '3 files, 33 bytes',
    });
    assert.deepEqual(status('rows public.notes'), {
      subject: 'rows public.notes',
      status: 'mismatch',
      source: '2',
      target: '1',
    });
    assert.equal(status('db-page notes page digest')?.status, 'mismatch');
    assert.equal(status('rows public.sessions')?.status, 'skipped');
  } finally {
    if (previous === undefined) delete process.env.DEPLOY_CONFIG;
    else process.env.DEPLOY_CONFIG = previous;
  }
  const cli = await runDeployOnHost(lab, 'a', ['verify', 'notes', '--source', 'a', '--target', 'b']);
  assert.equal(cli.exitCode, 1);
  assert.match(cli.stdout, /rows public\.notes\s+MISMATCH\s+2\s+1/);
});
