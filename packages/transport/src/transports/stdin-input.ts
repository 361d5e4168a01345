import type { StreamPath } from '../contract.js';
import type { ReceiverInput, ReceiverInputContext } from './transport.js';

/**
 * The target half of the pipe transports (ssh, local): the bytes are this command's stdin. A pipe
 * has no verdict of its own: when it ends early, the sender or the connection went away.
 */
export function openStdinInput(context: ReceiverInputContext, path: StreamPath): ReceiverInput {
  const stream = context.stdin ?? process.stdin;
  return {
    stream,
    path,
    secrets: [],
    transportFailure: async () => undefined,
    onEnded: () => undefined,
    complete: async () => undefined,
    async close() {
      // Nothing reads it after us: let go of it, so the process ends even while the sender keeps
      // its end open (it learns the outcome from our events, not from our stdin).
      stream.destroy();
    },
  };
}
