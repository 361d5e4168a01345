import { checkDeployOnHost } from './ssh.js';
import { startPipeSession } from './pipe-session.js';
import type { Transport } from './transport.js';

/** local: a same-host pipe into `deploy stream receive` (still framed and checked). */
export const localTransport: Transport = {
  name: 'local',
  summary: 'same-host pipe (restores on one machine, tests)',
  guarantees: {
    encryption: 'none (never leaves the host)',
    needsSshTrust: false,
    stagedBytes: 'none',
    retry: 'whole stream re-run from the producer',
    pathDetection: 'always `local`',
  },
  async preflight(context) {
    await checkDeployOnHost(context.target, context.deployCommand);
  },
  async start(context) {
    return startPipeSession(context, { host: context.target, transport: 'local', path: 'local' });
  },
};
