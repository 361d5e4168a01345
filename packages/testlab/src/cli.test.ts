// The lab CLI as a shell user runs it: what `up` prints must work when pasted, in a dir that is not the default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLabDownCommand, defaultLabDir, labStatus, stopLab } from './index.js';

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));

/** Runs a shell line with `npm run lab --` meaning this build's CLI (npm would rebuild the repo first). */
function runPasted(line: string): ReturnType<typeof spawnSync> {
  const command = line.replace(/^npm run lab --/, `${process.execPath} ${CLI}`);
  return spawnSync('bash', ['-c', command], { encoding: 'utf8', timeout: 60_000 });
}

test('lab up --dir prints a down command that stops that lab (a dir with a space in it)', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'dk-lab-cli-'));
  const dir = join(parent, 'my lab');
  t.after(async () => {
    // Whatever the assertions said: leave no lab behind.
    if ((await labStatus(dir)).state !== 'absent') await stopLab(dir);
    await rm(parent, { recursive: true, force: true });
  });
  const up = spawnSync(process.execPath, [CLI, 'up', '--hosts', '1', '--no-postgres', '--dir', dir], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(up.status, 0, `${up.stdout}\n${up.stderr}`);
  const hint = /^stop it with: (.+)$/m.exec(up.stdout)?.[1];
  assert.ok(hint !== undefined, up.stdout);
  assert.equal(hint, buildLabDownCommand(dir));
  assert.match(hint, /--dir '.*my lab'$/);
  assert.equal((await labStatus(dir)).state, 'running');
  const down = runPasted(hint);
  assert.equal(down.status, 0, `${String(down.stdout)}\n${String(down.stderr)}`);
  assert.match(String(down.stdout), /^lab lab-\S+ down in /m);
  assert.equal((await labStatus(dir)).state, 'absent');
});

test('the down command names no dir for the default lab dir', () => {
  assert.equal(buildLabDownCommand(defaultLabDir()), 'npm run lab -- down');
  assert.equal(buildLabDownCommand('/tmp/elsewhere'), 'npm run lab -- down --dir /tmp/elsewhere');
});
