import type { ConsumerSpec, TransportName } from '../contract.js';

/** The `deploy stream receive` flags, as data (documented in docs/transports.md). */
export interface ReceiverArgvOptions {
  readonly deployCommand: readonly string[];
  readonly transport: TransportName;
  readonly stream: string;
  readonly runId: string;
  readonly consumer: ConsumerSpec;
  readonly stallSeconds?: number;
  /** ffl: the share link (the pickup code travels as env DEPLOY_STREAM_PICKUP_CODE, a Secret). */
  readonly link?: string;
  /** ffl: the ffl binary on the target, when not on PATH. */
  readonly fflPath?: string;
  /** scp: the framed file on the target. */
  readonly file?: string;
  readonly deleteAfter?: boolean;
}

/** The environment variable carrying the ffl pickup code to `deploy stream receive`. */
export const PICKUP_CODE_ENV = 'DEPLOY_STREAM_PICKUP_CODE';

/** Builds `deploy stream receive --jsonl ...` for the target; consumer argv travels as one JSON word. */
export function buildReceiverArgv(options: ReceiverArgvOptions): string[] {
  const argv = [...options.deployCommand, 'stream', 'receive', '--jsonl', '--quiet'];
  argv.push('--transport', options.transport, '--name', options.stream, '--run-id', options.runId);
  if (options.consumer.kind === 'into') argv.push('--into', options.consumer.dir);
  else {
    const words = options.consumer.argv.map((word) => {
      if (typeof word !== 'string') throw new TypeError('a consumer argv cannot carry a secret to another host; pass it by env');
      return word;
    });
    argv.push('--consumer', JSON.stringify(words));
  }
  if (options.stallSeconds !== undefined) argv.push('--stall-seconds', String(options.stallSeconds));
  if (options.link !== undefined) argv.push('--link', options.link);
  if (options.fflPath !== undefined) argv.push('--ffl', options.fflPath);
  if (options.file !== undefined) argv.push('--file', options.file);
  if (options.deleteAfter === true) argv.push('--delete-after');
  return argv;
}

/** Builds `deploy stream cleanup --into DIR --run-id ID` (removes staging a failed receiver left). */
export function buildCleanupArgv(deployCommand: readonly string[], dir: string, runId: string): string[] {
  return [...deployCommand, 'stream', 'cleanup', '--quiet', '--into', dir, '--run-id', runId];
}
