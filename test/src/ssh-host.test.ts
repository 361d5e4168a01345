// End-to-end: SshHost against a lab sshd: a long TMPDIR (the ControlMaster socket must still fit
// in a Unix socket path), and a remote command killed although ssh printed a warning before the
// remote pid marker (docs/transports.md, "SshHost").
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, type Lab } from '@deploykit/testlab';
import { findProcessesByEnvironment, SshHost, stopProcesses } from '@deploykit/host';

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
    writeFileSync(config, `Host a\n  UserKnownHostsFile ${knownHosts}\n  StrictHostKeyChecking accept-new\n  LogLevel INFO\n  Include ${lab.sshConfigPath}\n`);
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
      await waitFor('the remote process group to be gone', () => findProcessesByEnvironment({ DK_TEST_RUN: mark }).length === 0, 10_000).catch(() => undefined);
      assert.deepEqual(findProcessesByEnvironment({ DK_TEST_RUN: mark }), [], 'no remote process of this run is left');
      assert.doesNotMatch(stderr, /@@deploykit-pid/, 'the marker is not passed on');
    } finally {
      // Whatever survived a failed assertion: found by this test's run marker only.
      await stopProcesses(findProcessesByEnvironment({ DK_TEST_RUN: mark }), 1000);
      await host.close();
    }
  });
});
