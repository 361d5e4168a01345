import type { ConsumerSpec } from '../contract.js';
import type { TargetInputSpec } from './transport.js';

/** The `deploy stream receive` flags, as data (documented in docs/transports.md). */
export interface ReceiverArgvOptions {
  readonly deployCommand: readonly string[];
  readonly stream: string;
  readonly runId: string;
  readonly consumer: ConsumerSpec;
  readonly stallSeconds?: number;
  readonly readySeconds?: number;
  /** Where the receiver reads: `-` (stdin), a file on the target, an ffl link. */
  readonly input: TargetInputSpec;
}

/** Builds `deploy stream receive --jsonl ...` for the target; consumer argv travels as one JSON word. */
export function buildReceiverArgv(options: ReceiverArgvOptions): string[] {
  const argv = [...options.deployCommand, 'stream', 'receive', '--jsonl', '--quiet'];
  argv.push('--name', options.stream, '--run-id', options.runId, '--from', options.input.from);
  if (options.consumer.kind === 'into') argv.push('--into', options.consumer.dir);
  else {
    const words = options.consumer.argv.map((word) => {
      if (typeof word !== 'string')
        throw new TypeError('a consumer argv cannot carry a secret to another host; pass it by env');
      return word;
    });
    argv.push('--consumer', JSON.stringify(words));
  }
  if (options.stallSeconds !== undefined) argv.push('--stall-seconds', String(options.stallSeconds));
  if (options.readySeconds !== undefined) argv.push('--ready-seconds', String(options.readySeconds));
  if (options.input.deleteAfter === true) argv.push('--delete-after');
  return argv;
}

/** Builds `deploy stream cleanup --into DIR --run-id ID` (removes staging a failed receiver left). */
export function buildCleanupArgv(deployCommand: readonly string[], dir: string, runId: string): string[] {
  return [...deployCommand, 'stream', 'cleanup', '--quiet', '--into', dir, '--run-id', runId];
}
