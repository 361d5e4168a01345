import type { Host, RunResult } from '@deploykit/core';
import type { StreamPath, TransportName } from '../contract.js';
import type { StageFailure } from '../pipeline/stage-failure.js';
import { buildReceiverArgv } from './receiver-argv.js';
import { startReceiverProcess } from './receiver-process.js';
import type { SenderSession, SessionContext } from './transport.js';

/** Waits for a promise at most `ms` milliseconds. */
export function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}

/**
 * A session whose framed bytes go straight into the stdin of `deploy stream receive` on `host`
 * (ssh: through the ssh channel; local: a local pipe).
 */
export function startPipeSession(
  context: SessionContext,
  options: {
    host: Host;
    transport: TransportName;
    /** Kept for the docs' table; the receiver itself reports the path it sees. */
    path: StreamPath;
    classifyExit?: (result: RunResult) => Pick<StageFailure, 'stage' | 'code' | 'message' | 'hint'>;
  },
): SenderSession {
  const argv = buildReceiverArgv({
    deployCommand: context.deployCommand,
    transport: options.transport,
    stream: context.stream,
    runId: context.runId,
    consumer: context.consumer,
    stallSeconds: context.stallSeconds,
  });
  const receiver = startReceiverProcess(context, {
    host: options.host,
    argv,
    stdin: 'pipe',
    ...(options.classifyExit === undefined ? {} : { classifyExit: options.classifyExit }),
  });
  const sink = receiver.process.stdin;
  if (sink === null) throw new TypeError('receiver stdin is not a pipe');
  let aborted: Promise<void> | undefined;
  return {
    sink,
    ready: receiver.ready,
    finished: receiver.finished,
    consumerBytes: receiver.consumerBytes,
    abort() {
      aborted ??= (async () => {
        sink.destroy();
        receiver.process.kill('SIGTERM');
        await waitAtMost(receiver.exited, 3000);
        receiver.process.kill('SIGKILL');
        await waitAtMost(receiver.exited, 2000);
      })();
      return aborted;
    },
  };
}
