// borg list against a real repository held locked by another borg (`borg with-lock REPO sleep`):
// the lock is named as a lock, never read as "no archive yet".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppFolder } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import { resolveHostContext } from '../host-context.js';
import { runSourcePreflight } from './source-preflight.js';

test('migrate preflight: a locked Borg repository is reported as locked (naming the lock and break-lock), not as "no archive yet"', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-borg-lock-test-'));
  const repo = join(dir, 'repo');
  const env = {
    BORG_REPO: repo,
    BORG_BASE_DIR: join(dir, 'base'),
    BORG_PASSPHRASE: '',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
  };
  const host = new LocalHost('source');
  const app: AppFolder = {
    name: 'demo',
    dir: join(dir, 'demo'),
    manifestPath: join(dir, 'demo', 'app.yaml'),
    manifest: {
      name: 'demo',
      runtime: 'process',
      env: {},
      volumes: [],
      database: { kind: 'none' },
      config: [],
      secrets: [],
      timeouts: { default: 30 },
      migrate: { transport: 'ssh', with_history: false },
      borg: { repository: repo },
    } as unknown as AppFolder['manifest'],
  };
  const source = resolveHostContext({ appsRoot: dir, stateDir: join(dir, 'state'), env: { DEPLOY_HOST_NAME: 'a' } });
  const preflight = () => runSourcePreflight({ app, source, host, withHistory: false });
  let holder: ReturnType<typeof spawn> | undefined;
  try {
    assert.equal((await host.run({ argv: ['borg', 'init', '-e', 'none', repo], env })).exitCode, 0);
    await mkdir(app.dir, { recursive: true });
    const empty = await preflight();
    assert.equal(empty.latestArchive, null);
    assert.ok(
      empty.notes.some((note) => note.startsWith('no archive yet')),
      `unlocked and empty: no archive yet (${empty.notes.join('; ')})`,
    );
    holder = spawn('borg', ['with-lock', repo, 'sleep', '60'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    const until = Date.now() + 15_000;
    while (!existsSync(join(repo, 'lock.exclusive'))) {
      if (Date.now() > until) throw new Error('borg with-lock did not take the lock');
      await sleep(50);
    }
    await assert.rejects(preflight(), (error: { code: string; kind: string; message: string; hint: string }) => {
      assert.deepEqual([error.kind, error.code], ['dependency', 'BORG_LOCKED']);
      assert.match(
        error.message,
        new RegExp(
          `^the Borg repository ${repo} is locked, so the migrate preflight could not read it: Failed to create/acquire the lock ${repo}/lock\\.exclusive`,
        ),
      );
      assert.doesNotMatch(error.message, /no archive/);
      assert.match(error.hint, /wait for it to finish/);
      assert.ok(error.hint.includes(`borg break-lock ${repo}`));
      return true;
    });
  } finally {
    if (holder?.pid !== undefined) {
      holder.kill('SIGTERM');
      await new Promise((resolve) =>
        holder!.exitCode !== null || holder!.signalCode !== null ? resolve(undefined) : holder!.once('exit', resolve),
      );
    }
    await rm(dir, { recursive: true, force: true });
  }
});
