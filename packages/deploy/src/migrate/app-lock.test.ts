import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireAppLock, lockPath, processStartTicks, readLock } from './app-lock.js';

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

test('a lock waits up to waitMs for a live holder to let go, and is refused without it', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'dk-lock-'));
  const holder = spawn('sleep', ['30']);
  try {
    await new Promise((resolve) => holder.once('spawn', resolve));
    await mkdir(join(stateDir, 'locks'), { recursive: true });
    await writeFile(lockPath(stateDir, 'notes'), JSON.stringify({ app: 'notes', pid: holder.pid, startTicks: processStartTicks(holder.pid!), host: 'h', runId: 'busy', command: 'deploy receive notes', since: 'now' }));
    await assert.rejects(acquireAppLock({ stateDir, app: 'notes', runId: 'run-5', command: 'new' }), /locked by "deploy receive notes" \(run busy/);
    const started = Date.now();
    setTimeout(() => holder.kill('SIGKILL'), 600);
    const lock = await acquireAppLock({ stateDir, app: 'notes', runId: 'run-5', command: 'new', waitMs: 20_000 });
    assert.ok(Date.now() - started >= 500, 'it waited for the holder');
    assert.equal(lock.replacedStale?.runId, 'busy');
    await lock.release();
    await assert.rejects(
      (async () => {
        await writeFile(lockPath(stateDir, 'notes'), JSON.stringify({ app: 'notes', pid: process.pid, startTicks: processStartTicks(process.pid), host: 'h', runId: 'me', command: 'x', since: 'now' }));
        await acquireAppLock({ stateDir, app: 'notes', runId: 'run-6', command: 'new', waitMs: 300 });
      })(),
      /locked by "x"/,
      'a holder that stays past waitMs is still refused',
    );
  } finally {
    holder.kill('SIGKILL');
    await rm(stateDir, { recursive: true, force: true });
  }
});
