import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import {
  buildDeployConfig,
  buildKnownHosts,
  buildSshConfig,
  buildSshdConfig,
  quoteSshConfigValue,
} from './lab-files.js';
import { buildLabAddresses } from './lab-addresses.js';
import type { LabHost } from './lab-types.js';

const host: LabHost = {
  name: 'b',
  address: '127.9.8.3',
  sshPort: 22,
  root: '/lab/b',
  authorizedKeysPath: '/lab/b/keys/authorized_keys',
  appsRoot: '/lab/b/apps',
  stateDir: '/lab/b/state',
  pgSocketDir: '/lab/b/pg/run',
  pgPort: 5432,
  env: { DEPLOY_HOST_NAME: 'b', PATH: '/repo/packages/deploy/bin:/usr/bin', GREETING: 'two words' },
};

test('lab addresses are one block, .2 upwards', () => {
  assert.deepEqual(buildLabAddresses(9, 8, 3), ['127.9.8.2', '127.9.8.3', '127.9.8.4']);
});

test('sshd_config listens on the host address and hands the identity over by SetEnv', () => {
  const config = buildSshdConfig(host, {
    hostKey: '/lab/b/keys/k',
    pidFile: '/lab/b/sshd.pid',
    authorizedKeys: '/lab/keys/ak',
  });
  assert.match(config, /^ListenAddress 127\.9\.8\.3:22$/m);
  assert.match(config, /^PidFile "\/lab\/b\/sshd\.pid"$/m);
  assert.match(config, /^UsePAM no$/m);
  assert.match(
    config,
    /^SetEnv "DEPLOY_HOST_NAME=b" "PATH=\/repo\/packages\/deploy\/bin:\/usr\/bin" "GREETING=two words"$/m,
  );
});

test('ssh config values refuse what ssh_config cannot quote', () => {
  assert.equal(quoteSshConfigValue('/a b/c'), '"/a b/c"');
  assert.throws(() => quoteSshConfigValue('say "hi"'), /cannot hold quotes/);
});

test('ssh_config has one strict block per host', () => {
  const config = buildSshConfig([host], { clientKey: '/lab/keys/id', knownHosts: '/lab/known_hosts' });
  assert.match(
    config,
    /^Host b\n {2}HostName 127\.9\.8\.3\n {2}Port 22\n {2}User root\n {2}IdentityFile "\/lab\/keys\/id"$/m,
  );
  assert.match(config, /^ {2}StrictHostKeyChecking yes$/m);
  assert.match(config, /^ {2}BatchMode yes$/m);
});

test('known_hosts names port 22 by address and other ports in brackets', () => {
  const text = buildKnownHosts([
    { address: '127.9.8.2', port: 22, publicKey: 'ssh-ed25519 AAAAkey1 comment' },
    { address: '127.9.8.3', port: 2222, publicKey: 'ssh-ed25519 AAAAkey2' },
  ]);
  assert.equal(text, '127.9.8.2 ssh-ed25519 AAAAkey1\n[127.9.8.3]:2222 ssh-ed25519 AAAAkey2\n');
});

test('deploy.yaml maps each host to its ssh alias, folders, address and session environment (for the local transport)', () => {
  const parsed = parse(buildDeployConfig([host], '/lab/ssh_config', 'lab-1')) as unknown;
  assert.deepEqual(parsed, {
    hosts: {
      b: {
        ssh: 'b',
        ssh_config: '/lab/ssh_config',
        apps_root: '/lab/b/apps',
        state_dir: '/lab/b/state',
        address: '127.9.8.3',
        env: host.env,
      },
    },
  });
});
