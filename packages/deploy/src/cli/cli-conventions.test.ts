// CLI conventions (issue 13 item 3): --version, shell completion, NO_COLOR/--no-color, the version in
// --json output, and the lazily loaded commands matching what --help lists. Runs the built bin in a
// fresh process where the behaviour is the process's (argv, env, a terminal).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { COMMAND_SPECS, loadCommands } from './commands/index.js';
import { withDeployVersion } from './main.js';
import { createTtyListener, useColor } from '../render/renderers.js';
import { DEPLOY_VERSION } from '../version.js';

const bin = fileURLToPath(new URL('../../bin/deploy.js', import.meta.url));
const packageVersion = (
  JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }
).version;
const rootVersion = (
  JSON.parse(readFileSync(fileURLToPath(new URL('../../../../package.json', import.meta.url)), 'utf8')) as {
    version: string;
  }
).version;

async function deploy(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

test('deploy --version prints the deploy package version (the root package.json says the same) and exits 0', async () => {
  const run = await deploy(['--version']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, `${packageVersion}\n`);
  assert.equal(DEPLOY_VERSION, packageVersion);
  assert.equal(
    rootVersion,
    packageVersion,
    'packages/deploy/package.json is the source of truth; bump the root package.json with it',
  );
});

test('deploy completion prints a bash script, and the completions it asks for name every command and their options', async () => {
  const script = await deploy(['completion'], { SHELL: '/bin/bash' });
  assert.equal(script.code, 0, script.stderr);
  assert.match(script.stdout, /complete -o bashdefault -o default -F _deploy_yargs_completions deploy/);
  assert.match(script.stdout, /deploy --get-yargs-completions/);

  const commands = await deploy(['--get-yargs-completions', 'deploy', '']);
  assert.equal(commands.code, 0, commands.stderr);
  const words = commands.stdout.trim().split('\n');
  for (const spec of COMMAND_SPECS)
    assert.ok(words.includes(spec.command.split(' ')[0]!), `${spec.command} in ${words.join(' ')}`);

  // A command's own options come from its lazily loaded module; the global ones (--host) too.
  const migrate = (await deploy(['--get-yargs-completions', 'deploy', 'migrate', '--'])).stdout.trim().split('\n');
  for (const option of ['--to', '--transport', '--host', '--json', '--color'])
    assert.ok(migrate.includes(option), `${option} in ${migrate.join(' ')}`);
});

test('colour on a terminal only, never with NO_COLOR (non-empty) or --no-color', () => {
  const tty = { isTTY: true, write: () => true } as unknown as NodeJS.WritableStream;
  const pipe = { write: () => true } as unknown as NodeJS.WritableStream;
  assert.equal(useColor(tty, true, {}), true);
  assert.equal(useColor(tty, true, { NO_COLOR: '1' }), false);
  assert.equal(useColor(tty, true, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)');
  assert.equal(useColor(tty, false, {}), false);
  assert.equal(useColor(pipe, true, {}), false);

  const lines: string[] = [];
  const out = { isTTY: true, write: (text: string) => lines.push(text) } as unknown as NodeJS.WritableStream;
  const event = {
    type: 'phase.end',
    level: 'error',
    app: 'a',
    phase: 'stop',
    message: 'failed',
    time: '',
    runId: 'r',
    host: 'h',
    data: { status: 'failed' },
  } as const;
  createTtyListener({ level: 'info', stream: out, color: true })(event);
  createTtyListener({ level: 'info', stream: out, color: false })(event);
  assert.match(lines[0]!, /\x1b\[31mfailed\x1b\[0m/);
  assert.equal(lines[1], 'a:stop > failed\n');
});

test('on a real terminal deploy colours its progress, and NO_COLOR or --no-color turn it off', () => {
  assert.equal(
    spawnSync('script', ['--version']).status,
    0,
    'script(1) (util-linux, Debian package bsdutils) is needed to give deploy a real terminal',
  );
  const root = mkdtempSync(join(tmpdir(), 'deploy-color-'));
  try {
    mkdirSync(join(root, 'apps', 'fine', 'bin'), { recursive: true });
    writeFileSync(join(root, 'apps', 'fine', 'app.yaml'), 'name: fine\n');
    for (const phase of ['install', 'start', 'stop', 'backup', 'restore']) {
      writeFileSync(join(root, 'apps', 'fine', 'bin', phase), '#!/bin/sh\necho said\n');
      chmodSync(join(root, 'apps', 'fine', 'bin', phase), 0o755);
    }
    const onTerminal = (extra: string, env: NodeJS.ProcessEnv): string => {
      const command = `${process.execPath} ${bin} --apps-root ${root}/apps --state-dir ${root}/state stop fine ${extra}`;
      const run = spawnSync('script', ['-qec', command, '/dev/null'], {
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: undefined, ...env },
      });
      assert.equal(run.status, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /fine:stop/);
      return run.stdout;
    };
    assert.match(onTerminal('', {}), /\x1b\[2mfine:stop \|\x1b\[0m said/);
    assert.doesNotMatch(onTerminal('', { NO_COLOR: '1' }), /\x1b\[/);
    assert.doesNotMatch(onTerminal('--no-color', {}), /\x1b\[/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--json results carry deployVersion after their own fields; the schema document and arrays do not', async () => {
  assert.deepEqual(withDeployVersion({ ok: true, app: 'a' }, {}), {
    ok: true,
    app: 'a',
    deployVersion: packageVersion,
  });
  assert.deepEqual(Object.keys(withDeployVersion({ b: 1, a: 2 }, {}) as object), ['b', 'a', 'deployVersion']);
  assert.deepEqual(withDeployVersion({ $schema: 'x' }, { versionInJson: false }), { $schema: 'x' });
  assert.deepEqual(withDeployVersion([1, 2], {}), [1, 2]);

  const root = mkdtempSync(join(tmpdir(), 'deploy-json-'));
  try {
    mkdirSync(join(root, 'apps'));
    const list = await deploy([
      '--apps-root',
      join(root, 'apps'),
      '--state-dir',
      join(root, 'state'),
      'list',
      '--json',
    ]);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout), { root: join(root, 'apps'), apps: [], deployVersion: packageVersion });
    const schema = await deploy(['schema', '--json']);
    assert.equal((JSON.parse(schema.stdout) as Record<string, unknown>).deployVersion, undefined);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('each command --help lists is the command its module defines (the list is kept apart to start fast)', async () => {
  const loaded = await loadCommands();
  assert.deepEqual(
    loaded.map((command) => [command.command, command.describe]),
    COMMAND_SPECS.map((spec) => [spec.command, spec.describe]),
  );
});
