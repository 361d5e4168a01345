import { ConfigError, TransportError } from '@deploykit/core';
import { describeSshFailure, SshHost, SSH_CONNECTION_FAILED } from '@deploykit/host';
import { loadGlobalConfig } from '@deploykit/manifest';
import type { GlobalOptions } from './global-options.js';

/** Removes `--host X` / `--host=X` from an argv. */
export function stripHostOption(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let index = 0; index < argv.length; index += 1) {
    const word = argv[index]!;
    if (word === '--host') index += 1;
    else if (!word.startsWith('--host=')) out.push(word);
  }
  return out;
}

/** Builds an SshHost for a named host of the global config; unknown names list the known ones. */
export async function resolveNamedHost(name: string, configPath?: string, controlDir?: string): Promise<SshHost> {
  const { config } = await loadGlobalConfig(configPath);
  const entry = config.hosts[name];
  if (entry === undefined) {
    const known = Object.keys(config.hosts);
    throw new ConfigError('HOST_UNKNOWN', `no host named "${name}" in the global config`, {
      hint:
        known.length > 0
          ? `Known hosts: ${known.join(', ')}.`
          : 'Add it under `hosts:` in the file DEPLOY_CONFIG names (docs/config.md).',
    });
  }
  return new SshHost(name, {
    destination: entry.ssh,
    ...(entry.ssh_config ? { sshConfig: entry.ssh_config } : {}),
    ...(controlDir ? { controlDir } : {}),
  });
}

/** Runs the same deploy command on a named host over ssh, streaming its output; returns its exit code. */
export async function delegateToHost(options: GlobalOptions, argv: readonly string[]): Promise<number> {
  const host = await resolveNamedHost(options.host!, options.config);
  try {
    const proc = host.spawn({ argv: ['deploy', ...stripHostOption(argv)] });
    proc.stdout.pipe(process.stdout, { end: false });
    proc.stderr.pipe(process.stderr, { end: false });
    // ssh without a pty forwards no signal: pass Ctrl+C on to the remote deploy (it undoes its own
    // work when it can); a second one stops it outright.
    let interrupts = 0;
    const forward = (): void => {
      interrupts += 1;
      proc.kill(interrupts === 1 ? 'SIGINT' : 'SIGKILL');
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const result = await proc.wait().finally(() => {
      process.removeListener('SIGINT', forward);
      process.removeListener('SIGTERM', forward);
    });
    if (result.exitCode === SSH_CONNECTION_FAILED) {
      // Unreachable only when the remote deploy never started; else the connection was lost or it was killed there.
      const failure = describeSshFailure(
        result,
        host.name,
        `\`deploy ${stripHostOption(argv).slice(0, 2).join(' ')}\``,
      );
      throw new TransportError(
        failure.kind === 'lost' ? 'SSH_CONNECTION_LOST' : 'SSH_FAILED',
        failure.kind === 'lost' ? failure.message : `${failure.message} (${host.target.destination})`,
        {
          hint:
            failure.kind === 'lost'
              ? failure.hint
              : `Check \`ssh ${host.target.destination} true\` works (keys, known_hosts, sshd running).`,
        },
      );
    }
    return result.exitCode ?? 1;
  } finally {
    await host.close();
  }
}
