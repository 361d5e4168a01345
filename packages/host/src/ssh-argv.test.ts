import { test } from 'node:test';
import assert from 'node:assert/strict';
import { secret } from '@deploykit/core';
import { buildRemoteCommand, buildSecretPreamble, buildSshBaseArgv } from './ssh-argv.js';

test('ssh base argv reuses one connection through a ControlMaster socket', () => {
  assert.deepEqual(buildSshBaseArgv({ destination: 'b', sshConfig: '/lab/ssh_config', controlDir: '/tmp/cm' }), [
    'ssh', '-F', '/lab/ssh_config',
    '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10',
    '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3',
    '-o', 'ControlMaster=auto', '-o', 'ControlPath=/tmp/cm/m', '-o', 'ControlPersist=60',
    '-T', 'b',
  ]);
});

test('remote command prints its pid, quotes every word once, and execs', () => {
  const command = buildRemoteCommand({ argv: ['tar', '-x', '-C', "/srv/apps/it's here"], cwd: '/srv', env: { A: 'x y' } });
  assert.equal(
    command,
    `echo "@@deploykit-pid $$" >&2 && cd /srv && exec env 'A=x y' tar -x -C '/srv/apps/it'\\''s here'`,
  );
});

test('secret env values travel on stdin, never in the command line', () => {
  const spec = { argv: ['psql'], env: { PGPASSWORD: secret('hunter22'), PGUSER: 'app' } };
  const command = buildRemoteCommand(spec);
  assert.ok(!command.includes('hunter22'));
  assert.match(command, /IFS= read -r PGPASSWORD && export PGPASSWORD/);
  assert.equal(buildSecretPreamble(spec), 'hunter22\n');
});

test('a secret in a remote argv is refused', () => {
  assert.throws(() => buildRemoteCommand({ argv: ['echo', secret('x')] }), /cannot travel in a remote argv/);
});
