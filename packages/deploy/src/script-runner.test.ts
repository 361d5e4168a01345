import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventBus, type AppFolder, type AppManifest } from '@deploykit/core';
import { isProcessRunning, LocalHost } from '@deploykit/host';
import { runPhase } from './script-runner.js';
import { resolveHostContext } from './host-context.js';

async function makeApp(
  scripts: Record<string, string>,
  manifest: Partial<AppManifest> = {},
): Promise<{ app: AppFolder; dir: string }> {
  const root = await mkdtemp(join(tmpdir(), 'dk-runner-'));
  const dir = join(root, 'demo');
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'secrets'), { recursive: true });
  await writeFile(join(dir, 'secrets', 'app.env'), 'DB_PASSWORD=correct-horse-battery\n', { mode: 0o600 });
  for (const [phase, body] of Object.entries(scripts)) {
    await writeFile(join(dir, 'bin', phase), `#!/usr/bin/env bash\n${body}\n`);
    await chmod(join(dir, 'bin', phase), 0o755);
  }
  const full: AppManifest = {
    name: 'demo',
    runtime: 'process',
    env: { GREETING: 'hello' },
    volumes: [],
    database: { kind: 'none' },
    config: [],
    secrets: ['secrets/app.env'],
    timeouts: { default: 30 },
    migrate: { transport: 'ssh', with_history: false },
    ...manifest,
  };
  return { app: { name: 'demo', dir, manifestPath: join(dir, 'app.yaml'), manifest: full }, dir: root };
}

function setup(root: string) {
  const bus = new EventBus({ runId: 'test-run' }, { keep: true });
  const hostContext = resolveHostContext({
    appsRoot: root,
    stateDir: join(root, 'state'),
    env: { DEPLOY_HOST_NAME: 'h1' },
  });
  return { bus, context: { runId: 'test-run', role: 'local' as const, host: hostContext } };
}

test('a script runs in its app folder with the documented DEPLOY_* environment', async () => {
  const { app, dir } = await makeApp({
    install:
      'echo "cwd=$PWD app=$DEPLOY_APP phase=$DEPLOY_PHASE run=$DEPLOY_RUN_ID role=$DEPLOY_ROLE host=$DEPLOY_HOST_NAME greet=$GREETING state=$DEPLOY_APP_STATE_DIR"',
  });
  try {
    const { bus, context } = setup(dir);
    const result = await runPhase({ app, phase: 'install', host: new LocalHost(), context, bus });
    assert.equal(result.status, 'ok');
    const output = bus.events.filter((e) => e.type === 'script.output').map((e) => e.message);
    assert.deepEqual(output, [
      `cwd=${app.dir} app=demo phase=install run=test-run role=local host=h1 greet=hello state=${join(dir, 'state', 'apps', 'demo')}`,
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a failing script surfaces app, phase, exit code and the tail of its stderr', async () => {
  const { app, dir } = await makeApp({
    backup: 'for i in $(seq 1 30); do echo "noise $i" >&2; done; echo "borg: repository locked" >&2; exit 3',
  });
  try {
    const { bus, context } = setup(dir);
    const result = await runPhase({ app, phase: 'backup', host: new LocalHost(), context, bus });
    assert.equal(result.status, 'failed');
    assert.equal(result.app, 'demo');
    assert.equal(result.phase, 'backup');
    assert.equal(result.exitCode, 3);
    assert.equal(result.reason, 'exited with code 3');
    const tail = result.stderrTail.split('\n');
    assert.equal(tail.length, 15);
    assert.equal(tail.at(-1), 'borg: repository locked');
    const end = bus.events.find((e) => e.type === 'phase.end');
    assert.equal(end?.message, 'demo:backup failed: exited with code 3');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('exit 75 means skipped', async () => {
  const { app, dir } = await makeApp({ stop: 'echo "not running"; exit 75' });
  try {
    const { bus, context } = setup(dir);
    const result = await runPhase({ app, phase: 'stop', host: new LocalHost(), context, bus });
    assert.equal(result.status, 'skipped');
    assert.equal(result.exitCode, 75);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a hung script is killed at its timeout together with its children', async () => {
  const { app, dir } = await makeApp(
    { start: `sleep 300 & echo $! > "${'$'}DEPLOY_APP_DIR/child.pid"; sleep 300` },
    { timeouts: { start: 1, default: 30 } },
  );
  try {
    const { bus, context } = setup(dir);
    const started = Date.now();
    const result = await runPhase({ app, phase: 'start', host: new LocalHost(), context, bus });
    assert.equal(result.status, 'failed');
    assert.equal(result.timedOut, true);
    assert.match(result.reason ?? '', /timed out after 1 s/);
    assert.ok(Date.now() - started < 5000);
    const child = Number((await readFile(join(app.dir, 'child.pid'), 'utf8')).trim());
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(isProcessRunning(child), false, 'the background child must have been killed');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('secret values never reach the output events', async () => {
  const { app, dir } = await makeApp({
    install: 'source secrets/app.env; echo "connecting with $DB_PASSWORD"; echo "pw=$DB_PASSWORD" >&2; exit 1',
  });
  try {
    const { bus, context } = setup(dir);
    const result = await runPhase({ app, phase: 'install', host: new LocalHost(), context, bus });
    const all = JSON.stringify(bus.events) + result.stderrTail;
    assert.ok(!all.includes('correct-horse-battery'));
    assert.ok(all.includes('connecting with ***'));
    assert.equal(result.stderrTail, 'pw=***');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a missing required script fails, a missing optional one is skipped', async () => {
  const { app, dir } = await makeApp({});
  try {
    const { bus, context } = setup(dir);
    assert.equal((await runPhase({ app, phase: 'install', host: new LocalHost(), context, bus })).status, 'failed');
    assert.equal((await runPhase({ app, phase: 'migrate', host: new LocalHost(), context, bus })).status, 'skipped');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a daemon holding the script's stdout/stderr does not hold the phase: its pipes are released with a warning", async () => {
  const { app, dir } = await makeApp({
    start: `echo "before"; sleep 300 & echo $! > "${'$'}DEPLOY_APP_DIR/daemon.pid"; echo "after" >&2; printf "last words without a newline"`,
  });
  let daemon = 0;
  try {
    const { bus, context } = setup(dir);
    const started = Date.now();
    const result = await runPhase({ app, phase: 'start', host: new LocalHost(), context, bus });
    daemon = Number((await readFile(join(app.dir, 'daemon.pid'), 'utf8')).trim());
    assert.equal(result.status, 'ok');
    assert.ok(Date.now() - started < 5000, 'runPhase waited for the daemon');
    assert.deepEqual(
      bus.events
        .filter((e) => e.type === 'script.output')
        .map((e) => e.message)
        .sort(),
      ['after', 'before', 'last words without a newline'],
    );
    const warning = bus.events.find((e) => e.type === 'script.detach');
    assert.equal(warning?.level, 'warn');
    assert.match(warning?.message ?? '', /left a process holding its stdout\/stderr/);
    assert.equal(isProcessRunning(daemon), true, 'the daemon is the app, it must survive');
  } finally {
    if (daemon > 1) process.kill(daemon, 'SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
});

test('a script that exits normally gives no detach warning, and every line, CRLF or unfinished, is shown', async () => {
  const { app, dir } = await makeApp({ stop: 'echo "stopping"; printf "crlf\\r\\n"; printf "stopped" >&2' });
  try {
    const { bus, context } = setup(dir);
    const result = await runPhase({ app, phase: 'stop', host: new LocalHost(), context, bus });
    assert.equal(result.status, 'ok');
    assert.deepEqual(
      bus.events
        .filter((e) => e.type === 'script.output')
        .map((e) => e.message)
        .sort(),
      ['crlf', 'stopped', 'stopping'],
    );
    assert.equal(
      bus.events.some((e) => e.type === 'script.detach'),
      false,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
