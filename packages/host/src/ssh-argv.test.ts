import { test } from 'node:test';
import assert from 'node:assert/strict';
import { secret } from '@deploykit/core';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  AES_FIRST_CIPHERS,
  buildRemoteCommand,
  buildSecretPreamble,
  buildSshBaseArgv,
  preferredSshCiphers,
} from './ssh-argv.js';

test('ssh base argv reuses one connection through a ControlMaster socket', () => {
  assert.deepEqual(
    buildSshBaseArgv({ destination: 'b', sshConfig: '/lab/ssh_config', controlDir: '/tmp/cm', ciphers: null }),
    [
      'ssh',
      '-F',
      '/lab/ssh_config',
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=10',
      '-o',
      'ServerAliveInterval=5',
      '-o',
      'ServerAliveCountMax=3',
      '-o',
      'ControlMaster=auto',
      '-o',
      'ControlPath=/tmp/cm/m',
      '-o',
      'ControlPersist=60',
      '-T',
      'b',
    ],
  );
});

test('deploy offers AES-GCM first where the CPU has AES instructions, and DEPLOY_SSH_CIPHERS overrides it', () => {
  assert.deepEqual(
    buildSshBaseArgv({ destination: 'b', ciphers: 'aes128-gcm@openssh.com,chacha20-poly1305@openssh.com' }).slice(-4),
    ['-o', 'Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com', '-T', 'b'],
  );
  assert.equal(preferredSshCiphers({ DEPLOY_SSH_CIPHERS: '' }), null);
  assert.equal(
    preferredSshCiphers({ DEPLOY_SSH_CIPHERS: ' chacha20-poly1305@openssh.com ' }),
    'chacha20-poly1305@openssh.com',
  );
  const hasAes = /^(flags|Features)\s*:.*\baes\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  assert.equal(preferredSshCiphers({}), hasAes ? AES_FIRST_CIPHERS : null);
  // Every entry is one this machine's OpenSSH client knows (ssh -Q cipher), so the list never fails a connection.
  const known = new Set(execFileSync('ssh', ['-Q', 'cipher'], { encoding: 'utf8' }).split('\n'));
  for (const cipher of AES_FIRST_CIPHERS.split(',')) assert.ok(known.has(cipher), cipher);
});

test('remote command prints its pid, quotes every word once, and execs', () => {
  const command = buildRemoteCommand({
    argv: ['tar', '-x', '-C', "/srv/apps/it's here"],
    cwd: '/srv',
    env: { A: 'x y' },
  });
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
