import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireAppLock, lockPath, readLock } from './app-lock.js';

test('a second lock of the same app is refused and names the holder', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'dk-lock-'));
  try {
    const first = await acquireAppLock({ stateDir, app: 'notes', runId: 'run-1', command: 'deploy migrate notes --to b' });
    await assert.rejects(acquireAppLock({ stateDir, app: 'notes', runId: 'run-2', command: 'deploy migrate notes --to c' }), (error: Error) => {
      assert.match(error.message, /notes is locked by "deploy migrate notes --to b" \(run run-1, pid \d+ on .*\)/);
      return true;
    });
    await first.release();
    assert.equal(await readLock(stateDir, 'notes'), undefined);
    const again = await acquireAppLock({ stateDir, app: 'notes', runId: 'run-2', command: 'x' });
    await again.release();
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});

test('a stale lock of a dead process is detected and replaced', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'dk-lock-'));
  try {
    const child = spawn('true');
    await new Promise((resolve) => child.once('exit', resolve));
    await mkdir(join(stateDir, 'locks'), { recursive: true });
    await writeFile(lockPath(stateDir, 'notes'), JSON.stringify({ app: 'notes', pid: child.pid, startTicks: 1, host: 'h', runId: 'dead', command: 'old', since: 'then' }));
    const lock = await acquireAppLock({ stateDir, app: 'notes', runId: 'run-3', command: 'new' });
    assert.equal(lock.replacedStale?.runId, 'dead');
    assert.equal((await readLock(stateDir, 'notes'))?.runId, 'run-3');
    await lock.release();
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});

test('a recycled pid (same pid, other start time) does not keep a lock alive', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'dk-lock-'));
  try {
    await mkdir(join(stateDir, 'locks'), { recursive: true });
    await writeFile(lockPath(stateDir, 'notes'), JSON.stringify({ app: 'notes', pid: process.pid, startTicks: 1, host: 'h', runId: 'old', command: 'old', since: 'then' }));
    const lock = await acquireAppLock({ stateDir, app: 'notes', runId: 'run-4', command: 'new' });
    assert.equal(lock.replacedStale?.runId, 'old');
    await lock.release();
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});
