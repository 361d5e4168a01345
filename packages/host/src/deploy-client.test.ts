import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandSpec, Host, HostProcess, RunResult } from '@deploykit/core';
import { DeployClient } from './deploy-client.js';
import { LocalHost } from './local-host.js';

/** A fake `deploy`: prints what the test says and exits with the code it says. */
async function fakeDeploy(dir: string, body: string): Promise<string> {
  const path = join(dir, `deploy-${Math.random().toString(16).slice(2)}`);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

/** A host that answers every run with one fixed result (to show how ssh's own exit codes map). */
function fixedHost(kind: Host['kind'], result: Partial<RunResult>): Host {
  const full: RunResult = {
    argv: [],
    exitCode: 0,
    signal: null,
    stdout: '',
    stderr: '',
    durationMs: 1,
    timedOut: false,
    ...result,
  };
  return {
    name: 'b',
    kind,
    run: async (spec: CommandSpec) => ({ ...full, argv: spec.argv }),
    spawn: (): HostProcess => {
      throw new Error('not used');
    },
    close: async () => undefined,
  };
}

test('json() returns the answer, takes accepted exit codes as results and maps failures to error kinds', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'deploy-client-'));
  try {
    const host = new LocalHost('b');
    const ok = new DeployClient(host, {
      command: [await fakeDeploy(dir, 'echo "{\\"args\\":\\"$*\\"}"')],
      globalArgs: ['--apps-root', '/x'],
    });
    assert.deepEqual(await ok.json<{ args: string }>(['facts', 'notes']), {
      args: '--apps-root /x facts notes --json --quiet',
    });

    const unhealthy = new DeployClient(host, {
      command: [await fakeDeploy(dir, 'echo \'{"ok":false,"checks":[]}\'; exit 1')],
    });
    assert.deepEqual(await unhealthy.json(['health', 'notes'], { acceptExitCodes: [1] }), { ok: false, checks: [] });
    await assert.rejects(unhealthy.json(['health', 'notes']), (error: { kind: string }) => error.kind === 'internal');

    const locked = new DeployClient(host, {
      command: [
        await fakeDeploy(
          dir,
          'echo \'{"ok":false,"error":{"kind":"conflict","code":"APP_LOCKED","message":"notes is locked by run R","hint":"wait for it"}}\'; exit 7',
        ),
      ],
    });
    await assert.rejects(
      locked.json(['receive', 'notes']),
      (error: { kind: string; code: string; message: string; hint?: string }) => {
        assert.deepEqual([error.kind, error.code, error.hint], ['conflict', 'APP_LOCKED', 'wait for it']);
        assert.equal(error.message, 'deploy receive notes on b failed: notes is locked by run R');
        return true;
      },
    );

    const noSpace = new DeployClient(host, {
      command: [await fakeDeploy(dir, 'echo "deploy: b has 1 MiB free" >&2; exit 6')],
    });
    await assert.rejects(
      noSpace.json(['receive', 'notes']),
      (error: { kind: string; message: string }) =>
        error.kind === 'dependency' && /b has 1 MiB free$/.test(error.message),
    );

    const missing = new DeployClient(host, { command: [join(dir, 'no-such-deploy')] });
    await assert.rejects(
      missing.json(['facts', 'notes']),
      (error: { code: string; message: string }) =>
        error.code === 'DEPLOY_MISSING' && /not installed on host b/.test(error.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("ssh's 255 is an unreachable host; 127 from a remote shell is deploy missing", async () => {
  const unreachable = new DeployClient(
    fixedHost('ssh', { exitCode: 255, stderr: 'ssh: connect to host 127.0.0.3 port 22: Connection refused' }),
  );
  await assert.rejects(
    unreachable.json(['facts', 'notes']),
    (error: { kind: string; code: string; message: string }) => {
      assert.deepEqual([error.kind, error.code], ['dependency', 'HOST_UNREACHABLE']);
      assert.match(error.message, /Connection refused$/);
      return true;
    },
  );
  const notInstalled = new DeployClient(
    fixedHost('ssh', { exitCode: 127, stderr: 'bash: line 1: exec: deploy: not found' }),
  );
  await assert.rejects(
    notInstalled.json(['facts', 'notes']),
    (error: { code: string }) => error.code === 'DEPLOY_MISSING',
  );
  // A local command exiting 255 is not an ssh failure.
  const local = new DeployClient(fixedHost('local', { exitCode: 255, stderr: 'boom' }));
  await assert.rejects(
    local.json(['facts', 'notes']),
    (error: { code: string }) => error.code === 'REMOTE_DEPLOY_FAILED',
  );
});
