import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The sample app's real bin/maintenance and app/lib/maintenance.js, driven by `deploy maintenance`
// (the built CLI). The app process is a small node:http server using the sample's maintenance
// module, started the way bin/start starts server.js (setsid, the sample's supervisor, the same
// pid files), because server.js itself needs PostgreSQL and its npm packages.

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const DEPLOY = join(REPO, 'packages/deploy/bin/deploy.js');

const FIXTURE = `
import { createServer } from 'node:http';
import { appendFileSync, existsSync } from 'node:fs';
import { createMaintenance } from './lib/maintenance.js';
const maintenance = createMaintenance({ file: process.env.MAINTENANCE_FILE });
const writes = new URL('../data/writes.log', import.meta.url);
createServer((request, response) => {
  if (!maintenance.admit(request, response)) return;
  if (request.url === '/healthz') return response.end(JSON.stringify({ status: 'ok', maintenance: maintenance.on }));
  if (request.url === '/slow' && request.method === 'POST') {
    appendFileSync(writes, 'started\\n');
    // The write lasts until the test releases it.
    const wait = setInterval(() => {
      if (!existsSync(new URL('../data/release', import.meta.url))) return;
      clearInterval(wait);
      appendFileSync(writes, 'written\\n');
      response.end('saved');
    }, 20);
    return;
  }
  response.end('home');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitFor(what: string, check: () => Promise<boolean>, seconds = 15): Promise<void> {
  for (
    const deadline = Date.now() + seconds * 1000;
    Date.now() < deadline;
    await new Promise((resolve) => setTimeout(resolve, 50))
  ) {
    if (await check().catch(() => false)) return;
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("the sample app's bin/maintenance through `deploy maintenance`: a 503 page, writes in flight finish first, idempotent, kept across a start", async () => {
  const root = await mkdtemp(join(tmpdir(), 'dk-maint-'));
  const appDir = join(root, 'apps', 'notes');
  const stateDir = join(root, 'state');
  const runDir = join(stateDir, 'apps', 'notes', 'run');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const started: number[] = [];
  // Not spawnSync: the test's own fetch of the slow write must be able to finish while deploy runs.
  const deploy = (...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [
        DEPLOY,
        '--apps-root',
        join(root, 'apps'),
        '--state-dir',
        stateDir,
        '--json',
        ...args,
      ]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject).on('close', (status) => resolve({ status, stdout, stderr }));
    });
  const startApp = async (): Promise<void> => {
    // The previous start's pid files would pass the wait below at once, and the new supervisor would never be stopped.
    await rm(join(runDir, 'supervisor.pid'), { force: true });
    await rm(join(runDir, 'app.pid'), { force: true });
    const child = spawn(
      'setsid',
      [
        process.execPath,
        join(appDir, 'bin/lib/supervise.mjs'),
        '--pid-file',
        join(runDir, 'supervisor.pid'),
        '--child-pid-file',
        join(runDir, 'app.pid'),
        '--',
        process.execPath,
        join(appDir, 'app/fixture.mjs'),
      ],
      {
        env: { ...process.env, PORT: String(port), MAINTENANCE_FILE: join(stateDir, 'apps', 'notes', 'maintenance') },
        stdio: 'ignore',
        detached: true,
      },
    );
    child.unref();
    await waitFor(
      'the supervisor pid file',
      async () => (await readFile(join(runDir, 'supervisor.pid'), 'utf8')).trim() !== '',
    );
    started.push(Number((await readFile(join(runDir, 'supervisor.pid'), 'utf8')).trim()));
    await waitFor('the app to listen', async () => (await fetch(`${base}/healthz`)).ok);
  };
  const stopApp = (): void => {
    for (const pgid of started.splice(0)) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  try {
    await mkdir(join(appDir, 'app', 'lib'), { recursive: true });
    await mkdir(join(appDir, 'data'), { recursive: true });
    await mkdir(join(appDir, 'config'), { recursive: true });
    await mkdir(runDir, { recursive: true });
    await cp(join(REPO, 'apps-template', 'bin'), join(appDir, 'bin'), { recursive: true });
    await cp(join(REPO, 'apps-template', 'app', 'lib', 'maintenance.js'), join(appDir, 'app', 'lib', 'maintenance.js'));
    await writeFile(join(appDir, 'app', 'fixture.mjs'), FIXTURE);
    await writeFile(join(appDir, 'app', 'package.json'), '{"type":"module"}\n');
    await writeFile(
      join(appDir, 'config', 'app.env'),
      `PORT=${port}\nBIND_ADDRESS=127.0.0.1\nMAINTENANCE_WAIT_SECONDS=10\n`,
    );
    await writeFile(join(appDir, 'app.yaml'), `name: notes\nruntime: process\nport: ${port}\n`);
    assert.equal((await deploy('validate', 'notes')).status, 0);
    await startApp();

    // A write is in flight when maintenance goes on: `on` returns only after it finished.
    let slowStatus = 0;
    const slow = fetch(`${base}/slow`, { method: 'POST' }).then(
      (response) => (slowStatus = response.status),
      () => (slowStatus = -1),
    );
    await waitFor('the slow write to start', async () =>
      (await readFile(join(appDir, 'data/writes.log'), 'utf8')).includes('started'),
    );
    let onReturned = false;
    const onRun = deploy('maintenance', 'notes', 'on').finally(() => (onReturned = true));
    // The switch is on (new requests get 503), but `on` waits while the write runs...
    await waitFor('the maintenance switch', async () => (await fetch(`${base}/`)).status === 503);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(onReturned, false, 'bin/maintenance on returned while a write was in flight');
    // ...and returns once it finished.
    await writeFile(join(appDir, 'data/release'), '');
    const on = await onRun;
    assert.equal(on.status, 0, on.stdout + on.stderr);
    assert.equal(slowStatus, 200, 'the write admitted before maintenance finished before `on` returned');
    assert.equal(await readFile(join(appDir, 'data/writes.log'), 'utf8'), 'started\nwritten\n');
    await slow;

    const page = await fetch(`${base}/`);
    assert.equal(page.status, 503);
    assert.equal(page.headers.get('retry-after'), '60');
    assert.match(await page.text(), /<h1>notes is down for maintenance<\/h1>/);
    assert.equal((await fetch(`${base}/slow`, { method: 'POST' })).status, 503);
    assert.equal(
      await readFile(join(appDir, 'data/writes.log'), 'utf8'),
      'started\nwritten\n',
      'no write is taken while on',
    );
    assert.deepEqual(await (await fetch(`${base}/healthz`)).json(), { status: 'ok', maintenance: true });
    assert.equal((await deploy('maintenance', 'notes', 'on')).status, 0, 'on is idempotent');

    const off = await deploy('maintenance', 'notes', 'off');
    assert.equal(off.status, 0, off.stdout + off.stderr);
    assert.equal((await fetch(`${base}/`)).status, 200);
    assert.equal((await deploy('maintenance', 'notes', 'off')).status, 0, 'off is idempotent');

    // Switched on while the app is down, it answers 503 from its first request.
    stopApp();
    assert.equal((await deploy('maintenance', 'notes', 'on')).status, 0);
    await startApp();
    assert.equal((await fetch(`${base}/`)).status, 503);
    assert.equal((await deploy('maintenance', 'notes', 'off')).status, 0);
    assert.equal((await fetch(`${base}/`)).status, 200);

    // Wrong usage: the CLI refuses another mode (exit 2), the script too (exit 2 = failed, 4).
    assert.equal((await deploy('maintenance', 'notes', 'sideways')).status, 2);
    const script = spawnSync(join(appDir, 'bin', 'maintenance'), ['sideways'], { cwd: appDir, encoding: 'utf8' });
    assert.equal(script.status, 2);
    assert.match(script.stderr, /usage: bin\/maintenance on\|off\|status/);

    // An app without the script cannot stop taking writes while running: a config error, not a skip.
    await rm(join(appDir, 'bin', 'maintenance'));
    const missing = await deploy('maintenance', 'notes', 'on');
    assert.equal(missing.status, 3);
    assert.match(missing.stdout, /MAINTENANCE_SCRIPT_MISSING/);
  } finally {
    stopApp();
    await rm(root, { recursive: true, force: true });
  }
});
