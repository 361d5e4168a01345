import { secret, TransportError } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import { cleanupStaging, locateFflBinary, PICKUP_CODE_ENV, runReceiver, type ConsumerSpec, type ReceiveResult, type StreamEvent, type TransportName } from '@deploykit/transport';
import type { CommandContext } from '../cli/command-context.js';

/** Inputs of `deploy stream receive` (see docs/transports.md). */
export interface ReceiveStreamOptions {
  readonly name: string;
  readonly transport: TransportName;
  readonly runId: string;
  readonly consumer: ConsumerSpec;
  readonly stallSeconds: number;
  readonly link?: string;
  readonly fflPath?: string;
  readonly file?: string;
  readonly deleteAfter: boolean;
  readonly onEvent: (event: StreamEvent) => void;
  readonly signal?: AbortSignal;
}

/** Receives one framed stream on this host (stdin, a file or an ffl link) into the consumer. */
export async function receiveStream(context: CommandContext, options: ReceiveStreamOptions): Promise<ReceiveResult> {
  const host = new LocalHost(context.hostContext.hostName);
  let source: Parameters<typeof runReceiver>[0]['source'];
  if (options.transport === 'ffl') {
    if (options.link === undefined) throw new TransportError('STREAM_NO_LINK', 'the ffl receiver needs --link', { hint: 'The sending deploy passes the share link; by hand, copy it from `ffl`.' });
    const code = process.env[PICKUP_CODE_ENV];
    const ffl = await locateFflBinary(host, options.fflPath === undefined ? {} : { path: options.fflPath });
    source = { kind: 'ffl', link: options.link, fflPath: ffl.path, ...(code ? { pickupCode: secret(code) } : {}) };
  } else if (options.transport === 'scp' || options.file !== undefined) {
    if (options.file === undefined) throw new TransportError('STREAM_NO_FILE', 'the scp receiver needs --file', { hint: 'Name the framed file the sender copied.' });
    source = { kind: 'file', path: options.file, deleteAfter: options.deleteAfter };
  } else {
    source = { kind: 'stdin' };
  }
  return runReceiver({
    stream: options.name,
    runId: options.runId,
    transport: options.transport,
    consumer: options.consumer,
    source,
    stallSeconds: options.stallSeconds,
    emit: options.onEvent,
    host,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
}

/** Removes the staging dirs a receive of `runId` (or of any run) left next to DIR. */
export async function cleanupStream(dir: string, runId?: string): Promise<string[]> {
  return cleanupStaging(dir, runId);
}
