import type { Host, RunResult } from '@deploykit/core';
import type { StreamPath } from '../contract.js';
import type { StageFailure } from '../pipeline/stage-failure.js';
import { waitAtMost } from '../pipeline/timing.js';
import type { SenderChannel, SenderContext } from './transport.js';

/**
 * A channel whose bytes go straight into the stdin of the target command on `host` (ssh: through
 * the ssh channel; local: a local pipe); the command's stdout comes back on `output`.
 */
export function startPipeChannel(
  context: SenderContext,
  options: {
    host: Host;
    path: StreamPath;
    classifyExit?: (result: RunResult) => Pick<StageFailure, 'stage' | 'code' | 'message' | 'hint'> | undefined;
  },
): SenderChannel {
  const proc = options.host.spawn({
    argv: context.targetArgv({ from: '-' }),
    ...(context.targetEnv ? { env: context.targetEnv } : {}),
    stdin: 'pipe',
    label: `receiver ${context.stream}`,
    maxBuffer: 64 * 1024,
  });
  const sink = proc.stdin;
  if (sink === null) throw new TypeError('the target command has no stdin pipe');
  sink.on('error', () => undefined);
  let ended = false;
  const exited = proc.wait().then((result) => {
    ended = true;
    const failure = options.classifyExit?.(result);
    return { result, ...(failure === undefined ? {} : { failure }) };
  });
  let aborted: Promise<void> | undefined;
  return {
    sink,
    output: proc.stdout,
    errors: proc.stderr,
    ready: Promise.resolve(),
    exited,
    interactive: true,
    path: options.path,
    transportBytes: () => 0,
    stagedBytes: () => 0,
    interrupt: () => proc.kill('SIGINT'),
    abort() {
      aborted ??= (async () => {
        sink.destroy();
        // A command that ended needs no signal (over ssh that would cost another session).
        if (ended) return;
        proc.kill('SIGTERM');
        await waitAtMost(exited, 3000);
        proc.kill('SIGKILL');
        await waitAtMost(exited, 2000);
      })();
      return aborted;
    },
  };
}
