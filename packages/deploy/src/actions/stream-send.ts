import { LocalHost } from '@deploykit/host';
import { runStream, type ConsumerSpec, type StreamEvent, type StreamResult, type TransportName, type TransportOptions } from '@deploykit/transport';
import { UsageError, type Host } from '@deploykit/core';
import type { CommandContext } from '../cli/command-context.js';
import { resolveNamedHost } from '../cli/delegate.js';

/** Inputs of `deploy stream send`. */
export interface SendStreamOptions {
  readonly name: string;
  readonly transport: TransportName;
  /** Named target host from the global config; omitted for `local`. */
  readonly to?: string;
  readonly producer?: readonly string[];
  readonly producerStream?: NodeJS.ReadStream;
  readonly consumer: ConsumerSpec;
  readonly stallSeconds?: number;
  /** Readiness window: start -> first payload byte at the receiver (see RunStreamOptions.readySeconds). */
  readonly readySeconds?: number;
  readonly retries?: number;
  readonly estimatedBytes?: number;
  readonly transportOptions?: TransportOptions;
  readonly onEvent?: (event: StreamEvent) => void;
}

/** Runs one stream from this host to `--to` (or this host for `local`); returns its StreamResult. */
export async function sendStream(context: CommandContext, options: SendStreamOptions): Promise<StreamResult> {
  if (options.transport !== 'local' && options.to === undefined) {
    throw new UsageError('STREAM_NO_TARGET', `the ${options.transport} transport needs a target host`, { hint: 'Add --to HOST (a host named in the global config).' });
  }
  if (options.producer === undefined && options.producerStream === undefined) {
    throw new UsageError('STREAM_NO_PRODUCER', 'nothing to send: give --producer or pipe the payload into stdin', { hint: 'Example: --producer \'["pg_dump","-Fc","notes"]\'' });
  }
  const source = new LocalHost(context.hostContext.hostName);
  let target: Host = source;
  if (options.transport !== 'local') target = await resolveNamedHost(options.to!, context.configPath ?? context.options.config);
  try {
    return await runStream({
      name: options.name,
      transport: options.transport,
      source,
      target,
      producer: options.producer ?? ['<stdin>'],
      ...(options.producerStream === undefined ? {} : { producerStream: options.producerStream }),
      consumer: options.consumer,
      runId: context.runId,
      ...(options.stallSeconds === undefined ? {} : { stallSeconds: options.stallSeconds }),
      ...(options.readySeconds === undefined ? {} : { readySeconds: options.readySeconds }),
      ...(options.retries === undefined ? {} : { retries: options.retries }),
      ...(options.estimatedBytes === undefined ? {} : { estimatedBytes: options.estimatedBytes }),
      ...(options.transportOptions === undefined ? {} : { transportOptions: options.transportOptions }),
      ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
    });
  } finally {
    await target.close();
  }
}
