// End-to-end: SshHost against a lab sshd: a long TMPDIR (the ControlMaster socket must still fit
// in a Unix socket path), and a remote command killed although ssh printed a warning before the
// remote pid marker or before the marker was read at all, and ssh's exit 255 told apart: a host it
// cannot reach vs a connection lost (or a remote command killed) after the command started
// (docs/transports.md, "SshHost").
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, type Lab } from '@deploykit/testlab';
import { createServer } from 'node:net';
import { DeployClient, findProcessesByEnvironment, SshHost, stopProcesses } from '@deploykit/host';

/** Local processes whose command line mentions `text` (an ssh master of a control dir). */
function processesMentioning(text: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)
    .filter((name) => {
      try {
        return readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('SshHost against a lab sshd', { concurrency: false }, () => {
  let lab: Lab;
  before(async () => {
    lab = await startLab({ hosts: 1, postgres: false });
  });
  after(async () => {
    await lab?.down();
  });

  test('with a 100-character TMPDIR ssh works, and close() leaves nothing behind', async () => {
    const longTmp = `${lab.dir}/tmp-`.padEnd(100, 'x');
    assert.equal(longTmp.length, 100);
    mkdirSync(longTmp);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = longTmp;
    let host: SshHost | undefined;
    try {
      host = new SshHost('a', { destination: 'a', sshConfig: lab.sshConfigPath });
      const controlDir = host.target.controlDir!;
      const first = await host.run({ argv: ['echo', 'hello'] });
      assert.equal(first.exitCode, 0, first.stderr);
      assert.equal(first.stdout, 'hello\n');
      assert.doesNotMatch(first.stderr, /too long/);
      // The second command goes through the shared connection: its socket exists, in a private dir.
      const second = await host.run({ argv: ['sh', '-c', 'echo $DEPLOY_HOST_NAME'] });
      assert.equal(second.exitCode, 0, second.stderr);
      assert.ok(statSync(join(controlDir, 'm')).isSocket(), `the master socket is in ${controlDir}`);
      assert.equal(statSync(controlDir).mode & 0o777, 0o700);
      assert.ok(processesMentioning(controlDir).length > 0, 'an ssh master serves the control dir');
      await host.close();
      host = undefined;
      assert.equal(existsSync(controlDir), false, 'the control dir is removed on close');
      await waitFor('the ssh master to exit', () => processesMentioning(controlDir).length === 0);
      assert.deepEqual(readdirSync(longTmp), [], 'nothing is left in TMPDIR');
    } finally {
      await host?.close();
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });

  test('a remote command is killed although ssh printed a warning before the pid marker', async () => {
    // A known_hosts file that does not know host a yet: ssh adds it and says so on stderr first.
    const knownHosts = join(lab.dir, `known_hosts-${randomBytes(4).toString('hex')}`);
    writeFileSync(knownHosts, '');
    const config = join(lab.dir, 'ssh_config-warn');
    writeFileSync(
      config,
      `Host a\n  UserKnownHostsFile ${knownHosts}\n  StrictHostKeyChecking accept-new\n  LogLevel INFO\n  Include ${lab.sshConfigPath}\n`,
    );
    const mark = `dk-kill-${randomBytes(4).toString('hex')}`;
    const host = new SshHost('a', { destination: 'a', sshConfig: config });
    try {
      const proc = host.spawn({ argv: ['sh', '-c', 'sleep 300 & wait'], env: { DK_TEST_RUN: mark } });
      let stderr = '';
      proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      proc.stdout.resume();
      await waitFor('the remote sh and sleep', () => findProcessesByEnvironment({ DK_TEST_RUN: mark }).length === 2);
      await waitFor('the warning', () => stderr.includes('\n'));
      assert.match(stderr, /^Warning: Permanently added .* to the list of known hosts\.\r?\n/, 'ssh warned first');
      proc.kill('SIGTERM');
      const result = await proc.wait();
      assert.notEqual(result.exitCode, 0);
      await waitFor(
        'the remote process group to be gone',
        () => findProcessesByEnvironment({ DK_TEST_RUN: mark }).length === 0,
        10_000,
      ).catch(() => undefined);
      assert.deepEqual(findProcessesByEnvironment({ DK_TEST_RUN: mark }), [], 'no remote process of this run is left');
      assert.doesNotMatch(stderr, /@@deploykit-pid/, 'the marker is not passed on');
    } finally {
      // Whatever survived a failed assertion: found by this test's run marker only.
      await stopProcesses(findProcessesByEnvironment({ DK_TEST_RUN: mark }), 1000);
      await host.close();
    }
  });
  test('kill() before the pid marker was read still stops the remote command', async () => {
    const mark = `dk-early-${randomBytes(4).toString('hex')}`;
    const host = new SshHost('a', { destination: 'a', sshConfig: lab.sshConfigPath });
    try {
      // The connection is up (the master), so the remote command starts at once.
      assert.equal((await host.run({ argv: ['true'] })).exitCode, 0);
      const proc = host.spawn({ argv: ['sh', '-c', 'sleep 300 & wait'], env: { DK_TEST_RUN: mark } });
      proc.stdout.resume();
      proc.stderr.resume();
      // Busy-wait without yielding to the event loop: the remote sh and sleep run, but their pid
      // marker sits unread in ssh's stderr pipe when kill() is called.
      const until = Date.now() + 15_000;
      while (findProcessesByEnvironment({ DK_TEST_RUN: mark }).length < 2) {
        if (Date.now() > until) throw new Error('the remote command did not start');
      }
      proc.kill('SIGTERM');
      const result = await proc.wait();
      assert.notEqual(result.exitCode, 0);
      await waitFor(
        'the remote process group to be gone',
        () => findProcessesByEnvironment({ DK_TEST_RUN: mark }).length === 0,
        10_000,
      ).catch(() => undefined);
      assert.deepEqual(findProcessesByEnvironment({ DK_TEST_RUN: mark }), [], 'no remote process of this run is left');
    } finally {
      await stopProcesses(findProcessesByEnvironment({ DK_TEST_RUN: mark }), 1000);
      await host.close();
    }
  });

  test("ssh's exit 255: a remote command killed or its sshd session killed is a lost connection; a closed port cannot be reached", async () => {
    for (const victim of ['the remote command', 'its sshd session'] as const) {
      const mark = `dk-255-${randomBytes(4).toString('hex')}`;
      const host = new SshHost('a', { destination: 'a', sshConfig: lab.sshConfigPath });
      try {
        // One remote process (sh execs sleep): killed, nothing else holds the session's pipes open.
        const client = new DeployClient(host, { command: ['sh', '-c', 'exec sleep 300', 'deploy'] });
        const running = client.json(['receive', 'notes'], { env: { DK_TEST_RUN: mark } }).then(
          () => assert.fail('it cannot succeed'),
          (error: unknown) => error as { kind: string; code: string; message: string; hint?: string },
        );
        const commandOf = (pid: number): string =>
          readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
        await waitFor('the remote sleep', () =>
          findProcessesByEnvironment({ DK_TEST_RUN: mark }).some((pid) => commandOf(pid) === 'sleep 300'),
        );
        const [remote] = findProcessesByEnvironment({ DK_TEST_RUN: mark });
        // The remote command, or its parent: its sshd session.
        const target =
          victim === 'the remote command'
            ? remote!
            : Number(readFileSync(`/proc/${remote}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
        if (victim === 'its sshd session')
          assert.match(
            readFileSync(`/proc/${target}/cmdline`, 'utf8'),
            /^sshd/,
            'the parent of the remote command is its sshd session',
          );
        process.kill(target, 'SIGKILL');
        const error = await running;
        assert.equal(error.code, 'SSH_CONNECTION_LOST', `${victim} killed: ${error.message}`);
        assert.match(
          error.message,
          /^the connection to a was lost or the remote process was killed while `deploy receive notes` ran there \(ssh exit 255/,
        );
        assert.doesNotMatch(error.message, /cannot reach/);
      } finally {
        await stopProcesses(findProcessesByEnvironment({ DK_TEST_RUN: mark }), 1000);
        await host.close();
      }
    }
    // A loopback port nobody listens on: the connection never comes up.
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port: free } = server.address() as { port: number };
        server.close(() => resolve(free));
      });
    });
    const config = join(lab.dir, 'ssh_config-closed');
    writeFileSync(config, `Host closed\n  HostName 127.0.0.1\n  Port ${port}\n  Include ${lab.sshConfigPath}\n`);
    const host = new SshHost('closed', { destination: 'closed', sshConfig: config });
    try {
      await assert.rejects(
        new DeployClient(host).json(['facts', 'notes']),
        (error: { code: string; message: string }) => {
          assert.equal(error.code, 'HOST_UNREACHABLE');
          assert.match(error.message, /^cannot reach host closed over ssh: .*Connection refused/);
          return true;
        },
      );
    } finally {
      await host.close();
    }
  });
});
