import { stringify } from 'yaml';
import type { LabHost } from './lab-types.js';

/** Words sshd_config and ssh_config cannot carry even inside double quotes. */
const UNQUOTABLE = /["\n\r\\]/;

/** Quotes a value for sshd_config/ssh_config; throws when it holds a double quote, backslash or newline. */
export function quoteSshConfigValue(value: string): string {
  if (UNQUOTABLE.test(value))
    throw new Error(`lab: ssh config value cannot hold quotes, backslashes or newlines: ${value}`);
  return `"${value}"`;
}

/** sshd_config of one lab host: key-only root login on its own address, identity through SetEnv. */
export function buildSshdConfig(
  host: LabHost,
  paths: { hostKey: string; pidFile: string; authorizedKeys: string },
): string {
  const setEnv = Object.entries(host.env)
    .map(([name, value]) => quoteSshConfigValue(`${name}=${value}`))
    .join(' ');
  return [
    `# Written by the deploykit lab for host ${host.name}; thrown away with the lab.`,
    `ListenAddress ${host.address}:${host.sshPort}`,
    `HostKey ${quoteSshConfigValue(paths.hostKey)}`,
    `PidFile ${quoteSshConfigValue(paths.pidFile)}`,
    `AuthorizedKeysFile ${quoteSshConfigValue(paths.authorizedKeys)}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    // No PAM: it would need a service file and would read /etc/environment over our SetEnv.
    'UsePAM no',
    // The lab dir lives in a world-readable tmp dir; sshd's ownership checks would refuse it.
    'StrictModes no',
    'PrintMotd no',
    'PrintLastLog no',
    'UseDNS no',
    'MaxStartups 100:30:200',
    'MaxSessions 50',
    'LogLevel ERROR',
    'Subsystem sftp internal-sftp',
    // SetEnv overrides PATH and HOME (checked with OpenSSH 9.2); HOME points into the host root so
    // root's own ~/.bashrc (which may prepend to PATH) is not read by the session's bash.
    `SetEnv ${setEnv}`,
    '',
  ].join('\n');
}

/** ssh_config with one `Host <name>` block per lab host, so `ssh -F ssh_config b -- cmd` works. */
export function buildSshConfig(hosts: readonly LabHost[], paths: { clientKey: string; knownHosts: string }): string {
  const blocks = hosts.map((host) =>
    [
      `Host ${host.name}`,
      `  HostName ${host.address}`,
      `  Port ${host.sshPort}`,
      '  User root',
      `  IdentityFile ${quoteSshConfigValue(paths.clientKey)}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${quoteSshConfigValue(paths.knownHosts)}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '  ConnectTimeout 10',
      '  LogLevel ERROR',
      '',
    ].join('\n'),
  );
  return `# Written by the deploykit lab; use as: ssh -F <this file> <host> -- <command>\n\n${blocks.join('\n')}`;
}

/** known_hosts naming each host by address (and [address]:port off port 22) with its host public key. */
export function buildKnownHosts(entries: readonly { address: string; port: number; publicKey: string }[]): string {
  return entries
    .map(({ address, port, publicKey }) => {
      const name = port === 22 ? address : `[${address}]:${port}`;
      const [type, key] = publicKey.trim().split(/\s+/);
      return `${name} ${type} ${key}\n`;
    })
    .join('');
}

/** The global deploy config naming the lab hosts, for `deploy` on the controlling side. */
export function buildDeployConfig(hosts: readonly LabHost[], sshConfigPath: string, labId: string): string {
  const map: Record<string, Record<string, string | Record<string, string>>> = {};
  for (const host of hosts) {
    map[host.name] = {
      ssh: host.name,
      ssh_config: sshConfigPath,
      apps_root: host.appsRoot,
      state_dir: host.stateDir,
      address: host.address,
      // What an ssh session there gets: the local transport runs deploy for this host with it.
      env: host.env,
    };
  }
  return `# Written by the deploykit lab ${labId}: export DEPLOY_CONFIG=<this file>\n${stringify({ hosts: map })}`;
}

/** postgresql.conf lines of one host: listen on its own address and socket dir. */
export function buildPostgresHostConf(host: { address: string; pgPort: number; pgSocketDir: string }): string {
  return [
    '',
    '# deploykit lab host settings',
    `listen_addresses = '${host.address}'`,
    `port = ${host.pgPort}`,
    `unix_socket_directories = '${host.pgSocketDir.replace(/'/g, "''")}'`,
    '',
  ].join('\n');
}

/** postgresql.conf lines every lab cluster shares: fast and small, since the data is throwaway. */
export const POSTGRES_LAB_CONF = [
  '',
  '# deploykit lab: throwaway clusters, so durability is traded for speed',
  'fsync = off',
  'synchronous_commit = off',
  'full_page_writes = off',
  'shared_buffers = 16MB',
  'max_connections = 40',
  'max_wal_senders = 2',
  'min_wal_size = 2MB',
  'max_wal_size = 32MB',
  'dynamic_shared_memory_type = posix',
  'logging_collector = off',
  "password_encryption = 'scram-sha-256'",
  '',
].join('\n');

/** pg_hba.conf: trust on the unix socket, real password (SCRAM) over TCP from loopback. */
export const POSTGRES_LAB_HBA = [
  "# deploykit lab: socket = trust (the host's root), TCP = password, as a production app would log in",
  'local   all          all                 trust',
  'local   replication  all                 trust',
  'host    all          all   127.0.0.0/8   scram-sha-256',
  'host    replication  all   127.0.0.0/8   scram-sha-256',
  '',
].join('\n');
