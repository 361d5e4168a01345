// `deploy start` returns when bin/start exits, even when bin/start leaves a daemon that still holds its
// stdout/stderr (issue 10: it printed "ok" and then hung for the daemon's whole life). Run as a user runs
// it: the built bin, a fresh process, temp folders, no lab. Every daemon is stopped by its PID.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isProcessRunning } from '@deploykit/host';
import { runDeploy, type DeployRun } from './helpers/index.js';

const SCRIPTS = ['install', 'start', 'stop', 'backup', 'restore'] as const;

let root = '';
let appsRoot = '';
let stateDir = '';
const daemons: number[] = [];

async function writeApp(name: string, start: string): Promise<string> {
  const dir = join(appsRoot, name);
  await mkdir(join(dir, 'bin'), { recursive: true });
  for (const phase of SCRIPTS)
    await writeFile(join(dir, 'bin', phase), phase === 'start' ? start : '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  await writeFile(join(dir, 'app.yaml'), `name: ${name}\n`);
  return dir;
}

function describeRun(run: DeployRun): string {
  return `exit ${run.exitCode}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}

/** Runs deploy (killed after 60 s, far below the daemons' 300 s) and reports how long it took. */
async function timedDeploy(...args: string[]): Promise<{ run: DeployRun; seconds: number }> {
  const started = Date.now();
  const run = await runDeploy(['--apps-root', appsRoot, '--state-dir', stateDir, ...args], { timeoutMs: 60_000 });
  return { run, seconds: (Date.now() - started) / 1000 };
}

async function readDaemonPid(dir: string): Promise<number> {
  const pid = Number((await readFile(join(dir, 'daemon.pid'), 'utf8')).trim());
  assert.ok(Number.isInteger(pid) && pid > 1, `bin/start wrote no daemon pid (${pid})`);
  daemons.push(pid);
  return pid;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'deploy-start-daemon-'));
  appsRoot = join(root, 'apps');
  stateDir = join(root, 'state');
  await mkdir(appsRoot);
});

after(async () => {
  for (const pid of daemons) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  await rm(root, { recursive: true, force: true });
});

test('deploy start returns when bin/start exits although its daemon keeps stdout and stderr open', async () => {
  // `sleep 300 &` without a redirect: the daemon inherits the script's stdout and stderr pipes.
  const dir = await writeApp(
    'sloppy',
    '#!/bin/sh\necho "starting the daemon"\nsleep 300 &\necho $! > daemon.pid\necho "daemon started" >&2\n',
  );
  const { run, seconds } = await timedDeploy('start', 'sloppy');
  const pid = await readDaemonPid(dir);
  assert.equal(run.exitCode, 0, describeRun(run));
  assert.ok(seconds < 15, `deploy start took ${seconds.toFixed(1)} s: it waited for the daemon\n${describeRun(run)}`);
  assert.match(run.stdout, /^ok +sloppy:start/m, describeRun(run));
  // The script's own output is shown, and the user is told why the daemon's later output is not.
  const all = run.stdout + run.stderr;
  assert.match(all, /sloppy:start \| starting the daemon/, describeRun(run));
  assert.match(all, /sloppy:start \| daemon started/, describeRun(run));
  assert.match(all, /left a process holding its stdout\/stderr.*setsid/, describeRun(run));
  assert.equal(isProcessRunning(pid), true, 'the daemon bin/start left must still run after deploy exited');
});

test('a bin/start that detaches its daemon properly starts it without a warning', async () => {
  const dir = await writeApp(
    'tidy',
    '#!/bin/sh\necho "starting the daemon"\nsetsid sleep 300 </dev/null >/dev/null 2>&1 &\necho $! > daemon.pid\necho "daemon started" >&2\n',
  );
  const { run, seconds } = await timedDeploy('start', 'tidy');
  const pid = await readDaemonPid(dir);
  assert.equal(run.exitCode, 0, describeRun(run));
  assert.ok(seconds < 15, `deploy start took ${seconds.toFixed(1)} s\n${describeRun(run)}`);
  const all = run.stdout + run.stderr;
  assert.match(all, /tidy:start \| starting the daemon/, describeRun(run));
  assert.match(all, /tidy:start \| daemon started/, describeRun(run));
  assert.doesNotMatch(all, /left a process holding/, describeRun(run));
  assert.equal(isProcessRunning(pid), true, 'the detached daemon must still run after deploy exited');
});
