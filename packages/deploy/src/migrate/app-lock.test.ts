import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireAppLock, lockPath, processStartTicks, readLock } from './app-lock.js';

test('a second lock of the same app is refused and names the holder', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'dk-lock-'));
  try {
    const first = await acquireAppLock({
      stateDir,
      app: 'notes',
      runId: 'run-1',
      command: 'deploy migrate notes --to b',
    });
    await assert.rejects(
      acquireAppLock({ stateDir, app: 'notes', runId: 'run-2', command: 'deploy migrate notes --to c' }),
      (error: Error) => {
        assert.match(error.message, /notes is locked by "deploy migrate notes --to b" \(run run-1, pid \d+ on .*\)/);
        return true;
      },
    );
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
    await writeFile(
      lockPath(stateDir, 'notes'),
      JSON.stringify({
        app: 'notes',
        pid: child.pid,
        startTicks: 1,
        host: 'h',
        runId: 'dead',
        command: 'old',
        since: 'then',
      }),
    );
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
    await writeFile(
      lockPath(stateDir, 'notes'),
      JSON.stringify({
        app: 'notes',
        pid: process.pid,
        startTicks: 1,
        host: 'h',
        runId: 'old',
        command: 'old',
        since: 'then',
      }),
    );
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
    await writeFile(
      lockPath(stateDir, 'notes'),
      JSON.stringify({
        app: 'notes',
        pid: holder.pid,
        startTicks: processStartTicks(holder.pid!),
        host: 'h',
        runId: 'busy',
        command: 'deploy receive notes',
        since: 'now',
      }),
    );
    await assert.rejects(
      acquireAppLock({ stateDir, app: 'notes', runId: 'run-5', command: 'new' }),
      /locked by "deploy receive notes" \(run busy/,
    );
    const started = Date.now();
    setTimeout(() => holder.kill('SIGKILL'), 600);
    const lock = await acquireAppLock({ stateDir, app: 'notes', runId: 'run-5', command: 'new', waitMs: 20_000 });
    assert.ok(Date.now() - started >= 500, 'it waited for the holder');
    assert.equal(lock.replacedStale?.runId, 'busy');
    await lock.release();
    await assert.rejects(
      (async () => {
        await writeFile(
          lockPath(stateDir, 'notes'),
          JSON.stringify({
            app: 'notes',
            pid: process.pid,
            startTicks: processStartTicks(process.pid),
            host: 'h',
            runId: 'me',
            command: 'x',
            since: 'now',
          }),
        );
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

/**
 * One contender process: for each `go <round>` line on stdin it takes the lock and answers `won` or
 * the error code; a winner holds the lock until `release`, so every contender of a round has decided
 * while it holds it (two holders at once cannot hide behind a quick release).
 */
const CONTENDER = `
import { createInterface } from 'node:readline';
const { acquireAppLock } = await import(process.argv[1]);
const [, , stateDir, name] = process.argv;
let held;
for await (const line of createInterface({ input: process.stdin })) {
  const [verb, round] = line.split(' ');
  if (verb === 'go') {
    try {
      held = await acquireAppLock({ stateDir, app: 'notes', runId: name + '-' + round, command: 'contender ' + name });
      console.log('won ' + round + (held.replacedStale ? ' replaced' : ''));
    } catch (error) {
      console.log('lost ' + round + ' ' + (error.code ?? error.message));
    }
  } else if (verb === 'release') {
    await held?.release();
    held = undefined;
    console.log('released ' + round);
  }
}
`;

test('a stale lock and 8 contending processes: exactly one takes it over, 50 rounds in a row', {
  timeout: 240_000,
}, async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'dk-lock-'));
  const moduleUrl = new URL('./app-lock.js', import.meta.url).href;
  const contenders = Array.from({ length: 8 }, (_, index) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CONTENDER, moduleUrl, stateDir, `c${index}`], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    const waiters: (() => void)[] = [];
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      for (const wake of waiters.splice(0)) wake();
    });
    const next = async (): Promise<string> => {
      while (lines.length === 0) await new Promise<void>((resolve) => waiters.push(resolve));
      return lines.shift()!;
    };
    return { child, next, send: (line: string) => child.stdin.write(`${line}\n`) };
  });
  try {
    const dead = spawn('true');
    await new Promise((resolve) => dead.once('exit', resolve));
    await mkdir(join(stateDir, 'locks'), { recursive: true });
    const outcomes: string[] = [];
    for (let round = 1; round <= 50; round += 1) {
      const stale = {
        app: 'notes',
        pid: dead.pid,
        startTicks: 1,
        host: 'h',
        runId: `dead-${round}`,
        command: 'killed',
        since: new Date().toISOString(),
      };
      await writeFile(lockPath(stateDir, 'notes'), JSON.stringify(stale));
      for (const c of contenders) c.send(`go ${round}`);
      const answers = await Promise.all(contenders.map((c) => c.next()));
      const winners = answers.flatMap((answer, index) => (answer.startsWith('won ') ? [index] : []));
      outcomes.push(`round ${round}: ${winners.length} winner(s)`);
      assert.equal(
        winners.length,
        1,
        `round ${round}: exactly one contender holds the lock, got ${JSON.stringify(answers)}`,
      );
      const winner = winners[0]!;
      assert.equal(answers[winner], `won ${round} replaced`, 'the winner replaced the stale lock');
      for (const [index, answer] of answers.entries())
        if (index !== winner)
          assert.equal(answer, `lost ${round} APP_LOCKED`, `the others are refused by the live winner: ${answer}`);
      assert.equal(
        (await readLock(stateDir, 'notes'))?.runId,
        `c${winner}-${round}`,
        'the lock on disk names the winner',
      );
      contenders[winner]!.send(`release ${round}`);
      assert.equal(await contenders[winner]!.next(), `released ${round}`);
      assert.deepEqual(await readdir(join(stateDir, 'locks')), [], 'no lock, temp file or break token is left behind');
    }
    console.log(
      `# 50 rounds x 8 contenders: ${outcomes.filter((o) => o.endsWith(' 1 winner(s)')).length} rounds with exactly one winner`,
    );
  } finally {
    for (const c of contenders) c.child.kill('SIGKILL');
    await rm(stateDir, { recursive: true, force: true });
  }
});

test('a contender killed while holding the break token does not block the takeover', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'dk-lock-'));
  try {
    const dead = spawn('true');
    await new Promise((resolve) => dead.once('exit', resolve));
    await mkdir(join(stateDir, 'locks'), { recursive: true });
    const path = lockPath(stateDir, 'notes');
    const staleRecord = JSON.stringify({
      app: 'notes',
      pid: dead.pid,
      startTicks: 1,
      host: 'h',
      runId: 'dead',
      command: 'killed',
      since: 'then',
    });
    await writeFile(path, staleRecord);
    // The token a killed contender left: the first generation for exactly this stale file.
    const id = `${(await stat(path)).ino}-${createHash('sha256').update(staleRecord).digest('hex').slice(0, 16)}`;
    await writeFile(
      `${path}.break-${id}-1`,
      JSON.stringify({ pid: dead.pid, startTicks: 1, runId: 'killed-contender' }),
    );
    const lock = await acquireAppLock({ stateDir, app: 'notes', runId: 'run-7', command: 'new' });
    assert.equal(lock.replacedStale?.runId, 'dead');
    await lock.release();
    assert.deepEqual(
      await readdir(join(stateDir, 'locks')),
      [],
      "the dead contender's token is removed with the stale lock",
    );
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});
