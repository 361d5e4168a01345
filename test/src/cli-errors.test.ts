// The deploy CLI's error surface, run as a user runs it (the built bin, a fresh process, temp folders, no lab):
// exact messages with file:line:column, the documented exit codes, hints naming what exists, --json error shape,
// a failing script's report, and an Examples section in every command's --help.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runDeploy, type DeployRun } from './helpers/index.js';

const DEPLOY_VERSION = (
  JSON.parse(readFileSync(fileURLToPath(new URL('../../packages/deploy/package.json', import.meta.url)), 'utf8')) as {
    version: string;
  }
).version;

const SCRIPTS = ['install', 'start', 'stop', 'backup', 'restore'] as const;

let root = '';
let appsRoot = '';
let stateDir = '';

/** Writes an app folder with app.yaml `manifest` and no-op bin scripts (the ones in `scripts` override). */
async function writeApp(dir: string, manifest: string, scripts: Record<string, string> = {}): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  for (const phase of SCRIPTS)
    await writeFile(join(dir, 'bin', phase), scripts[phase] ?? '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  await writeFile(join(dir, 'app.yaml'), manifest);
}

/** Runs deploy against the temp apps root and state dir. */
function deploy(...args: string[]): Promise<DeployRun> {
  return runDeploy(['--apps-root', appsRoot, '--state-dir', stateDir, ...args]);
}

function describeRun(run: DeployRun): string {
  return `exit ${run.exitCode}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'deploy-cli-errors-'));
  appsRoot = join(root, 'apps');
  stateDir = join(root, 'state');
  await mkdir(appsRoot);
  await writeApp(join(appsRoot, 'typo'), 'name: typo\nvolumez:\n  - name: data\n    path: data\n');
  await writeApp(join(appsRoot, 'badtype'), 'name: badtype\nport: eighty\n');
  await writeApp(
    join(appsRoot, 'checkvol'),
    'name: checkvol\nvolumes:\n  - name: uploads\n    path: data/uploads\nhealth:\n  base_url: "http://{host_address}:8080"\n  checks:\n    - name: media\n      type: uploads\n      volume: media\n      url_prefix: /media/\n',
  );
  await writeApp(join(appsRoot, 'yamlbad'), 'name: yamlbad\nvolumes: [a, b\nport: 1\n');
  await writeApp(join(appsRoot, 'escape'), 'name: escape\nvolumes:\n  - name: up\n    path: ../outside\n');
  await writeApp(join(appsRoot, 'scripts'), 'name: scripts\n');
  await chmod(join(appsRoot, 'scripts', 'bin', 'stop'), 0o644);
  await rm(join(appsRoot, 'scripts', 'bin', 'restore'));
  await writeApp(join(appsRoot, 'secret'), 'name: secret\nsecrets:\n  - secrets/db.env\n');
  await mkdir(join(appsRoot, 'secret', 'secrets'));
  await writeFile(join(appsRoot, 'secret', 'secrets', 'db.env'), 'PASSWORD=x\n', { mode: 0o644 });
  await chmod(join(appsRoot, 'secret', 'secrets', 'db.env'), 0o644);
  // Two valid apps: one whose backup fails loudly, one that works, to show one failure hides nothing.
  const noisy = `#!/bin/sh\nfor i in $(seq 1 20); do echo "backup problem line $i" >&2; done\necho "progress on stdout"\nexit 9\n`;
  await writeApp(join(appsRoot, 'failing'), 'name: failing\n', { backup: noisy });
  await writeApp(join(appsRoot, 'fine'), 'name: fine\n');
  await writeFile(join(root, 'deploy.yaml'), 'hosts:\n  a:\n    ssh: a\n  b:\n    ssh: b\n');
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('broken app folders: deploy validate prints each error as file:line:column: path: message and exits 3', async () => {
  const cases: [string, string[]][] = [
    [
      'typo',
      [
        `${appsRoot}/typo/app.yaml:2:1: unknown key "volumez" (known: name, description, runtime, port, env, volumes, database, borg, config, secrets, timeouts, health, migrate); did you mean "volumes"?`,
      ],
    ],
    ['badtype', [`${appsRoot}/badtype/app.yaml:2:7: port: must be integer`]],
    [
      'checkvol',
      [
        `${appsRoot}/checkvol/app.yaml:10:15: health/checks/0/volume: volume "media" is not declared in volumes (known: uploads)`,
      ],
    ],
    [
      'yamlbad',
      [
        `${appsRoot}/yamlbad/app.yaml:3:1: YAML syntax: Flow sequence in block collection must be sufficiently indented and end with a ]`,
      ],
    ],
    [
      'escape',
      [
        `${appsRoot}/escape/app.yaml:4:11: volumes/0/path: volume path "../outside" leaves the app folder: use a path relative to the app folder without ".."`,
      ],
    ],
    [
      'secret',
      [
        `${appsRoot}/secret/app.yaml:3:5: secrets/0: secret file secrets/db.env is accessible by other users (mode 0644): run chmod 600 secrets/db.env`,
      ],
    ],
    [
      'scripts',
      [
        `${appsRoot}/scripts/bin/restore: bin/restore is missing: every app needs bin/install, bin/start, bin/stop, bin/backup, bin/restore`,
        `${appsRoot}/scripts/bin/stop: bin/stop is not executable: run chmod +x bin/stop`,
      ],
    ],
  ];
  for (const [app, errors] of cases) {
    const run = await deploy('validate', app);
    assert.equal(run.exitCode, 3, `validate ${app}: ${describeRun(run)}`);
    assert.deepEqual(
      run.stdout.trimEnd().split('\n'),
      [`FAILED ${app}`, ...errors.map((line) => `  error: ${line}`), '0 ok, 1 failed'],
      `validate ${app}`,
    );
  }
});

test('deploy validate --json gives every issue as data; a broken app also stops the commands that act on it', async () => {
  const run = await deploy('validate', 'badtype', 'fine', '--json');
  assert.equal(run.exitCode, 3, describeRun(run));
  const result = JSON.parse(run.stdout) as {
    ok: boolean;
    apps: { app: string; status: string; errors: Record<string, unknown>[] }[];
  };
  assert.equal(result.ok, false);
  assert.deepEqual(result.apps.map((a) => [a.app, a.status]).sort(), [
    ['badtype', 'failed'],
    ['fine', 'ok'],
  ]);
  const issue = result.apps.find((a) => a.app === 'badtype')?.errors[0];
  assert.deepEqual(
    { file: issue?.file, line: issue?.line, column: issue?.column, path: issue?.path, message: issue?.message },
    {
      file: `${appsRoot}/badtype/app.yaml`,
      line: 2,
      column: 7,
      path: 'port',
      message: 'must be integer',
    },
  );

  const start = await deploy('start', 'badtype');
  assert.equal(start.exitCode, 3, describeRun(start));
  assert.match(
    start.stderr,
    /^deploy: app "badtype" has 1 error\(s\):\n {2}.*badtype\/app\.yaml:2:7: port: must be integer\n {2}next: Fix them, then check with `deploy validate badtype`\.\n/,
  );
});

test('an unknown app lists the known apps (exit 3), as text and as the --json error shape', async () => {
  const run = await deploy('show', 'nope');
  assert.equal(run.exitCode, 3, describeRun(run));
  assert.equal(run.stdout, '');
  assert.equal(run.stderr, `deploy: no app named "nope" under ${appsRoot}\n  next: Known apps: failing, fine.\n`);

  const json = await deploy('show', 'nope', '--json');
  assert.equal(json.exitCode, 3);
  assert.deepEqual(JSON.parse(json.stdout), {
    ok: false,
    error: {
      kind: 'config',
      code: 'APP_UNKNOWN',
      message: `no app named "nope" under ${appsRoot}`,
      hint: 'Known apps: failing, fine.',
      details: {},
    },
    deployVersion: DEPLOY_VERSION,
  });
});

test('an unknown host lists the known hosts (exit 3), from --config and from DEPLOY_CONFIG', async () => {
  const viaOption = await runDeploy(['--config', join(root, 'deploy.yaml'), '--host', 'zz', 'list']);
  assert.equal(viaOption.exitCode, 3, describeRun(viaOption));
  assert.equal(viaOption.stderr, 'deploy: no host named "zz" in the global config\n  next: Known hosts: a, b.\n');
  const viaEnv = await runDeploy(['list', '--host', 'zz', '--json'], {
    env: { DEPLOY_CONFIG: join(root, 'deploy.yaml') },
  });
  assert.equal(viaEnv.exitCode, 3, describeRun(viaEnv));
  const body = JSON.parse(viaEnv.stdout) as { ok: boolean; error: { kind: string; code: string; hint: string } };
  assert.deepEqual(
    [body.ok, body.error.kind, body.error.code, body.error.hint],
    [false, 'config', 'HOST_UNKNOWN', 'Known hosts: a, b.'],
  );
});

test('usage errors exit 2 with a hint: unknown command, unknown option, missing argument, no app named', async () => {
  const cases: [string[], string][] = [
    [
      ['frobnicate'],
      'deploy: Unknown argument: frobnicate\n  next: See `deploy --help` or `deploy <command> --help`.\n',
    ],
    [
      ['list', '--bogus'],
      'deploy: Unknown argument: bogus\n  next: See `deploy --help` or `deploy <command> --help`.\n',
    ],
    [['show'], 'deploy: Missing required argument: app\n  next: See `deploy --help` or `deploy <command> --help`.\n'],
    [
      ['backup'],
      'deploy: name at least one app for backup, or pass --all\n  next: deploy backup <app>; `deploy list` shows the apps.\n',
    ],
  ];
  for (const [args, stderr] of cases) {
    const run = await deploy(...args);
    assert.equal(run.exitCode, 2, `deploy ${args.join(' ')}: ${describeRun(run)}`);
    assert.equal(run.stderr, stderr, `deploy ${args.join(' ')}`);
  }
  const json = await deploy('show', '--json');
  assert.equal(json.exitCode, 2);
  const body = JSON.parse(json.stdout) as { ok: boolean; error: { kind: string; code: string; message: string } };
  assert.deepEqual(
    [body.ok, body.error.kind, body.error.code, body.error.message],
    [false, 'usage', 'USAGE', 'Missing required argument: app'],
  );
});

test('a failing bin/backup is reported with app, phase, exit code and the last 15 stderr lines (exit 4); the other app still runs', async () => {
  const run = await deploy('backup', 'failing', 'fine');
  assert.equal(run.exitCode, 4, describeRun(run));
  const lines = run.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^failed {2}failing:backup \(\d+\.\d s\) archive failing-\S+ - exited with code 9$/);
  assert.deepEqual(
    lines.slice(1, 16),
    Array.from({ length: 15 }, (_, index) => `        | backup problem line ${index + 6}`),
  );
  assert.match(lines[16] ?? '', /^ok {6}fine:backup \(\d+\.\d s\) archive fine-\S+$/);
  assert.equal(lines[17], 'backup: 1 ok, 0 skipped, 1 failed');
  assert.equal(lines.length, 18);
  // The live stream on stderr carries the whole output, prefixed by app:phase.
  assert.match(run.stderr, /failing:backup \| backup problem line 1\n/);
  assert.match(run.stderr, /failing:backup \| progress on stdout\n/);

  const json = await deploy('backup', 'failing', '--json');
  assert.equal(json.exitCode, 4);
  const summary = JSON.parse(json.stdout) as {
    failed: number;
    results: { app: string; phase: string; status: string; exitCode: number; stderrTail: string }[];
  };
  const result = summary.results[0];
  assert.deepEqual(
    [summary.failed, result?.app, result?.phase, result?.status, result?.exitCode],
    [1, 'failing', 'backup', 'failed', 9],
  );
  assert.equal(result?.stderrTail.split('\n').at(-1), 'backup problem line 20');
});

test("deploy --help and every command's --help exit 0, and each command's help has an Examples section", async () => {
  const top = await runDeploy(['--help']);
  assert.equal(top.exitCode, 0, describeRun(top));
  const commands = [...top.stdout.matchAll(/^ {2}deploy ([a-z][a-z-]*)/gm)].map((match) => match[1]!);
  for (const documented of [
    'list',
    'show',
    'validate',
    'init',
    'install',
    'start',
    'stop',
    'backup',
    'restore',
    'health',
    'schema',
  ]) {
    assert.ok(commands.includes(documented), `deploy --help lists ${documented} (found: ${commands.join(', ')})`);
  }
  const missing: string[] = [];
  // Two at a time: each is a fresh node process and the machine has two cores.
  for (let index = 0; index < commands.length; index += 2) {
    const batch = commands.slice(index, index + 2);
    const runs = await Promise.all(batch.map((command) => runDeploy([command, '--help'])));
    runs.forEach((run, position) => {
      const command = batch[position]!;
      assert.equal(run.exitCode, 0, `deploy ${command} --help: ${describeRun(run)}`);
      const examples = run.stdout.split('\nExamples:\n')[1];
      if (examples === undefined || !new RegExp(`^ {2}deploy ${command}\\b`, 'm').test(examples)) missing.push(command);
    });
  }
  assert.deepEqual(missing, [], 'commands whose --help has no Examples section showing the command');
});
