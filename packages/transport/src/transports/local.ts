import { checkDeployOnHost } from './ssh.js';
import { startPipeChannel } from './pipe-channel.js';
import { openStdinInput } from './stdin-input.js';
import type { Transport } from './transport.js';

/** local: a same-host pipe into the target command (still framed and checked). */
export const localTransport: Transport = {
  name: 'local',
  summary: 'same-host pipe (another apps root or database cluster on this machine, tests)',
  interactive: true,
  guarantees: {
    encryption: 'none (never leaves the host)',
    needsSshTrust: false,
    stagedBytes: 'none',
    retry: 'a new pipe, resuming after the parts the target verified',
    pathDetection: 'always `local`',
  },
  async preflight(context) {
    await checkDeployOnHost(context.target, context.deployCommand);
  },
  async openSender(context) {
    return startPipeChannel(context, { host: context.target, path: 'local' });
  },
  accepts: (from) => from === '-',
  async openReceiver(context) {
    return openStdinInput(context, 'local');
  },
};
