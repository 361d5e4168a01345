import { secret } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import {
  cleanupStaging,
  PICKUP_CODE_ENV,
  resolveReceiverTransport,
  runReceiver,
  type ConsumerSpec,
  type ReceiveResult,
  type StreamEvent,
} from '@deploykit/transport';
import type { CommandContext } from '../cli/command-context.js';

/** Inputs of `deploy stream receive` (see docs/transports.md). */
export interface ReceiveStreamOptions {
  readonly name: string;
  readonly runId: string;
  readonly consumer: ConsumerSpec;
  readonly stallSeconds: number;
  /** Readiness window: no input byte within this long of the start fails the receive. */
  readonly readySeconds: number;
  /** Where the bytes come from: `-` (stdin), a file, an ffl link. */
  readonly from: string;
  /** The ffl binary, when not on PATH or in /opt/ffl. */
  readonly fflPath?: string;
  readonly deleteAfter: boolean;
  readonly onEvent: (event: StreamEvent) => void;
  readonly signal?: AbortSignal;
}

/** Receives one framed stream on this host (from stdin, a file or an ffl link) into the consumer. */
export async function receiveStream(context: CommandContext, options: ReceiveStreamOptions): Promise<ReceiveResult> {
  const host = new LocalHost(context.hostContext.hostName);
  const code = process.env[PICKUP_CODE_ENV];
  const input = await resolveReceiverTransport(options.from).openReceiver({
    from: options.from,
    deleteAfter: options.deleteAfter,
    host,
    runId: options.runId,
    label: options.name,
    ...(code ? { credential: secret(code) } : {}),
    ...(options.fflPath === undefined ? {} : { binaryPath: options.fflPath }),
  });
  return runReceiver({
    stream: options.name,
    runId: options.runId,
    consumer: options.consumer,
    input,
    stallSeconds: options.stallSeconds,
    readySeconds: options.readySeconds,
    emit: options.onEvent,
    host,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
}

/** Removes the staging dirs a receive of `runId` (or of any run) left next to DIR. */
export async function cleanupStream(dir: string, runId?: string): Promise<string[]> {
  return cleanupStaging(dir, runId);
}
