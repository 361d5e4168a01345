import { UsageError, type Host, type RunResult } from '@deploykit/core';
import { DeployClient } from '@deploykit/host';
import type { StageFailure } from '../pipeline/stage-failure.js';
import { describeExit } from './receiver-process.js';
import { startPipeChannel } from './pipe-channel.js';
import { openStdinInput } from './stdin-input.js';
import type { PreflightContext, Transport } from './transport.js';

/** Exit status of the OpenSSH client for a failed connection (and for a remote command killed by a signal). */
const SSH_FAILED = 255;
/** What the OpenSSH client says when the connection itself went away. */
const CONNECTION_LOST =
  /closed by remote host|Broken pipe|Connection (reset|refused|timed out|closed)|lost connection|ssh: connect to host|Could not resolve hostname|Timeout, server .* not responding/i;

/**
 * Tells a dropped ssh connection (a `sender` failure) from a target command that ended on its own
 * (undefined: its own answer, or its missing answer, explains it).
 */
export function classifySshExit(
  result: Pick<RunResult, 'exitCode' | 'signal' | 'stderr'>,
  hostName: string,
): Pick<StageFailure, 'stage' | 'code' | 'message' | 'hint'> | undefined {
  if (result.signal !== null || (result.exitCode === SSH_FAILED && CONNECTION_LOST.test(result.stderr))) {
    return {
      stage: 'sender',
      code: 'SSH_CONNECTION_LOST',
      message: `the ssh connection to ${hostName} dropped (${describeExit(result)})`,
      hint: `Check that \`ssh ${hostName} true\` works and the network is stable, then retry.`,
    };
  }
  return undefined;
}

/** Checks that `deploy` runs on a host; shared by every transport that starts a target command. */
export async function checkDeployOnHost(host: Host, deployCommand: readonly string[]): Promise<void> {
  const client = new DeployClient(host, { command: deployCommand });
  const result = await host.run({ argv: client.argv(['stream', 'receive', '--help']), timeoutMs: 30_000 });
  if (result.exitCode !== 0) throw client.errorFor(result, ['stream', 'receive']);
}

/** ssh: the bytes flow through an OpenSSH channel into the target command's stdin. */
export const sshTransport: Transport = {
  name: 'ssh',
  summary: 'stream over an SSH channel (needs SSH trust from source to target)',
  interactive: true,
  guarantees: {
    encryption: 'SSH channel encryption',
    needsSshTrust: true,
    stagedBytes: 'none',
    retry: 'a new session, resuming after the parts the target verified',
    pathDetection: 'always `ssh`',
  },
  async preflight(context: PreflightContext) {
    if (context.target.kind === 'local') {
      throw new UsageError(
        'SSH_NEEDS_REMOTE_TARGET',
        `the ssh transport needs a remote target, but ${context.target.name} is this host`,
        {
          hint: 'Use --transport local for a same-host stream.',
        },
      );
    }
    await checkDeployOnHost(context.target, context.deployCommand);
  },
  async openSender(context) {
    return startPipeChannel(context, {
      host: context.target,
      path: 'ssh',
      classifyExit: (result) => classifySshExit(result, context.target.name),
    });
  },
  // sshd sets SSH_CONNECTION for every session: stdin inside one is the ssh channel.
  accepts: (from, environment) => from === '-' && environment.SSH_CONNECTION !== undefined,
  async openReceiver(context) {
    return openStdinInput(context, 'ssh');
  },
};
