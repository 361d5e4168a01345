import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { settlesWithinIo } from './event-loop.js';

/** Keeps the event loop busy (no I/O, no timers) for `ms` milliseconds. */
function blockLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy
  }
}

test('settlesWithinIo: data that reached the pipe while the loop was blocked past the deadline still counts', async () => {
  const child = spawn('sh', ['-c', 'sleep 0.1; echo last-line'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise((resolve) => child.once('close', resolve));
  const firstData = new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const verdict = settlesWithinIo(firstData, 50);
  // The 50 ms run out and the line arrives while the loop cannot look: on a loaded machine this is
  // how a 200 ms drain after exit lost a short command's whole stdout.
  blockLoop(600);
  assert.equal(await verdict, true);
  await exited;
});

test('settlesWithinIo: a promise that never settles is reported as such after the time', async () => {
  const started = Date.now();
  assert.equal(await settlesWithinIo(new Promise(() => undefined), 100), false);
  assert.ok(Date.now() - started >= 95);
});
