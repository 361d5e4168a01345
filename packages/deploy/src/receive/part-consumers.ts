import { createWriteStream } from 'node:fs';
import { chmod, mkdir, rm, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeployError, formatBytes, type Host, type HostProcess, type RunResult } from '@deploykit/core';
import { tailLines } from '@deploykit/host';
import {
  BundleError,
  buildExtractArgv,
  ByteMeter,
  TarGuard,
  type BundlePartTrailer,
  type TarGuardOptions,
} from '@deploykit/transport';

/** Most a part held in memory (roles, grants) may have; real ones are a few KiB. */
const MAX_HELD_BYTES = 64 * 1024 * 1024;
/** Below this much free space a short write by tar is taken for a full disk. */
const MIN_FREE_BYTES = 1024 * 1024;

/**
 * Why a target-side run failed, and what that means for its rollback: `input` (the bytes stopped
 * coming or arrived damaged: the transfer is retried, verified parts are kept for it), `fatal` (a
 * deterministic failure: refused content, a full disk, a failed check - retrying cannot help).
 */
export class TargetFailure extends DeployError {
  readonly class: 'input' | 'fatal';
  readonly stage: string;
  constructor(error: DeployError, failureClass: 'input' | 'fatal', stage: string) {
    super(error.kind, error.code, error.message, {
      ...(error.hint === undefined ? {} : { hint: error.hint }),
      details: { ...error.details },
      cause: error,
    });
    this.class = failureClass;
    this.stage = stage;
  }
}

/** Bundle error codes that mean the input broke off or was damaged in transit (retryable). */
const INPUT_CODES = new Set([
  'BUNDLE_TRUNCATED',
  'BUNDLE_PART_MISMATCH',
  'BUNDLE_STREAM_MISMATCH',
  'BUNDLE_ABORTED',
  'BUNDLE_GARBAGE',
  'BUNDLE_SINK_CLOSED',
]);

/** Classifies what a part's `done` rejected with. */
export function classifyBundleError(error: unknown): TargetFailure | 'producer-failed' {
  if (error instanceof BundleError && error.code === 'BUNDLE_PRODUCER_FAILED') return 'producer-failed';
  if (error instanceof TargetFailure) return error;
  if (error instanceof DeployError)
    return new TargetFailure(error, INPUT_CODES.has(error.code) ? 'input' : 'fatal', 'transfer');
  return new TargetFailure(
    new DeployError('internal', 'INTERNAL', error instanceof Error ? error.message : String(error)),
    'fatal',
    'receiver',
  );
}

/** A part attempt as the consumers see it. */
export interface PartAttempt {
  readonly part: string;
  readonly data: Readable;
  readonly done: Promise<BundlePartTrailer>;
}

/** How one attempt went: verified (with its trailer), or its producer failed (the sender may retry). */
export type PartOutcome =
  | { readonly ok: true; readonly trailer: BundlePartTrailer; readonly bytes: number }
  | { readonly ok: false; readonly producerFailed: true; readonly message: string };

/** Counts bytes handed to a consumer, for progress and stall detection. */
export interface PartMeter {
  onBytes(total: number): void;
}

function meter(onBytes: PartMeter | undefined): ByteMeter {
  const byteMeter = new ByteMeter();
  if (onBytes) byteMeter.on('data', () => onBytes.onBytes(byteMeter.bytes));
  return byteMeter;
}

/** Free space note for a consumer that ran out of it (GNU tar reports a full disk as a short write). */
async function describeNoSpace(stderr: string, where: string): Promise<string | undefined> {
  const free = await statfs(where).then(
    (s) => s.bavail * s.bsize,
    () => undefined,
  );
  const note = free === undefined ? '' : ` (${formatBytes(free)} free in ${where})`;
  if (/No space left on device/i.test(stderr)) return note;
  if (free !== undefined && free < MIN_FREE_BYTES && /Wrote only \d+ of \d+ bytes/.test(stderr)) return note;
  return undefined;
}

/**
 * Feeds one part attempt into a consumer process (through `filters`) and decides: the trailer
 * verified and the consumer exited 0 -> ok; the producer failed -> the attempt is void; anything
 * else -> TargetFailure (input or fatal, with the stage to blame). `signal` aborts it (a stall).
 */
async function feedProcess(
  attempt: PartAttempt,
  consumer: HostProcess,
  filters: readonly Transform[],
  where: string,
  onBytes?: PartMeter,
  signal?: AbortSignal,
): Promise<PartOutcome> {
  consumer.stdout.resume();
  const stdin = consumer.stdin!;
  const byteMeter = meter(onBytes);
  const chain = pipeline([attempt.data, ...filters, byteMeter]).then(
    () => undefined,
    (error: unknown) => error,
  );
  byteMeter.pipe(stdin);
  // The consumer may close its stdin early (tar stops at the end-of-archive blocks): its exit
  // status decides, and the rest of the part still flows so its trailer is verified.
  stdin.on('error', () => {
    byteMeter.unpipe(stdin);
    byteMeter.resume();
  });
  const trailer = attempt.done.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  const exit = consumer.wait();
  const stopConsumer = async (): Promise<void> => {
    stdin.destroy();
    consumer.kill('SIGTERM');
    consumer.kill('SIGCONT');
    await exit;
  };
  const voidOrThrow = (error: unknown): PartOutcome => {
    const classified = classifyBundleError(error);
    if (classified === 'producer-failed') return { ok: false, producerFailed: true, message: (error as Error).message };
    throw classified;
  };
  const aborted = new Promise<{ aborted: unknown }>((resolve) => {
    if (signal?.aborted) resolve({ aborted: signal.reason });
    signal?.addEventListener('abort', () => resolve({ aborted: signal.reason }), { once: true });
  });
  const first = await Promise.race([
    chain.then((error) => ({ chain: error })),
    exit.then((result) => ({ exit: result })),
    aborted,
  ]);
  if ('aborted' in first) {
    await stopConsumer();
    throw first.aborted;
  }
  if ('exit' in first && first.exit.exitCode !== 0) {
    // The consumer died while the part still flows. A producer failure arriving now explains it.
    attempt.data.resume();
    const settled = await Promise.race([
      trailer,
      new Promise<undefined>((resolve) => setTimeout(resolve, 1500, undefined).unref()),
    ]);
    if (settled !== undefined && 'error' in settled) return voidOrThrow(settled.error);
    throw await consumerFailure(first.exit, where);
  }
  const chainError = await chain;
  if (chainError instanceof DeployError && chainError.code.startsWith('TAR_')) {
    await stopConsumer();
    throw new TargetFailure(chainError, 'fatal', 'integrity');
  }
  const settledTrailer = await trailer;
  if ('error' in settledTrailer) {
    await stopConsumer();
    return voidOrThrow(settledTrailer.error);
  }
  if (chainError !== undefined) {
    await stopConsumer();
    throw classifyBundleError(chainError);
  }
  const result = await Promise.race([exit.then((value) => ({ exit: value })), aborted]);
  if ('aborted' in result) {
    await stopConsumer();
    throw result.aborted;
  }
  if (result.exit.exitCode !== 0) throw await consumerFailure(result.exit, where);
  return { ok: true, trailer: settledTrailer.value, bytes: byteMeter.bytes };
}

async function consumerFailure(result: RunResult, where: string): Promise<TargetFailure> {
  const name = String(result.argv[0] ?? 'consumer');
  const status = result.signal ? `was killed by ${result.signal}` : `exited with code ${String(result.exitCode)}`;
  const space = await describeNoSpace(result.stderr, where);
  if (space !== undefined) {
    return new TargetFailure(
      new DeployError('dependency', 'CONSUMER_NO_SPACE', `${name} ${status}: No space left on device${space}`, {
        hint: 'Free space on this host (or choose another target), then run the migration again.',
        details: { stderrTail: tailLines(result.stderr, 10) },
      }),
      'fatal',
      'consumer',
    );
  }
  const last = tailLines(result.stderr, 3).replace(/\n/g, ' | ');
  return new TargetFailure(
    new DeployError('transport', 'CONSUMER_FAILED', `${name} ${status}${last ? `: ${last}` : ''}`, {
      hint: 'See the consumer error above; fix its cause on this host, then run the migration again.',
      details: { stderrTail: tailLines(result.stderr, 10) },
    }),
    'fatal',
    'consumer',
  );
}

/**
 * Extracts a tar part into a fresh 0700 dir through the TarGuard (no absolute paths, no `..`, no
 * links leaving the dir; device nodes and FIFOs only as `guard` declares them). The dir's own mode
 * comes from the archive's root entry, else 0755.
 */
export async function receiveTarPart(
  host: Host,
  attempt: PartAttempt,
  dir: string,
  onBytes?: PartMeter,
  signal?: AbortSignal,
  guardOptions: TarGuardOptions = {},
): Promise<PartOutcome> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const guard = new TarGuard(guardOptions);
  const tar = host.spawn({ argv: buildExtractArgv(dir), stdin: 'pipe', label: `${attempt.part} consumer` });
  const outcome = await feedProcess(attempt, tar, [guard], dirname(dir), onBytes, signal);
  if (outcome.ok && !guard.sawRootEntry) await chmod(dir, 0o755);
  return outcome;
}

/** Restores a database part by piping it into `argv`. */
export async function receiveCommandPart(
  host: Host,
  attempt: PartAttempt,
  argv: readonly string[],
  where: string,
  onBytes?: PartMeter,
  signal?: AbortSignal,
): Promise<PartOutcome> {
  const consumer = host.spawn({ argv, stdin: 'pipe', label: `${attempt.part} consumer` });
  return feedProcess(attempt, consumer, [], where, onBytes, signal);
}

/** Writes a part to a file (0600) in a fresh 0700 dir: a database dump held until the commit. */
export async function receiveFilePart(
  attempt: PartAttempt,
  file: string,
  onBytes?: PartMeter,
  signal?: AbortSignal,
): Promise<PartOutcome> {
  await rm(dirname(file), { recursive: true, force: true });
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const byteMeter = meter(onBytes);
  const written = pipeline(
    attempt.data,
    byteMeter,
    createWriteStream(file, { mode: 0o600 }),
    ...(signal ? [{ signal }] : []),
  ).catch((error: unknown) => error);
  try {
    const trailer = await attempt.done;
    const error = await written;
    if (error !== undefined) throw error;
    return { ok: true, trailer, bytes: byteMeter.bytes };
  } catch (error) {
    await written;
    if (signal?.aborted) throw signal.reason;
    const classified = classifyBundleError(error);
    if (classified === 'producer-failed') return { ok: false, producerFailed: true, message: (error as Error).message };
    const space = await describeNoSpace(String((error as Error).message), dirname(file));
    if (space !== undefined)
      throw new TargetFailure(
        new DeployError('dependency', 'CONSUMER_NO_SPACE', `writing ${file}: No space left on device${space}`, {
          hint: 'Free space on this host (or choose another target), then run the migration again.',
        }),
        'fatal',
        'consumer',
      );
    throw classified;
  }
}

/** Holds a small part (roles, grants SQL) in memory until its trailer verified. */
export async function receiveHeldPart(attempt: PartAttempt): Promise<PartOutcome & { text?: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > MAX_HELD_BYTES)
        return callback(
          new DeployError(
            'transport',
            'PART_TOO_LARGE',
            `part ${attempt.part} is over ${formatBytes(MAX_HELD_BYTES)}: not SQL of roles or grants`,
          ),
        );
      chunks.push(chunk);
      callback();
    },
  });
  const piped = pipeline(attempt.data, sink).catch((error: unknown) => error);
  try {
    const trailer = await attempt.done;
    const error = await piped;
    if (error instanceof DeployError && error.code === 'PART_TOO_LARGE')
      throw new TargetFailure(error, 'fatal', 'integrity');
    return { ok: true, trailer, bytes: size, text: Buffer.concat(chunks).toString('utf8') };
  } catch (error) {
    await piped;
    const classified = classifyBundleError(error);
    if (classified === 'producer-failed') return { ok: false, producerFailed: true, message: (error as Error).message };
    throw classified;
  }
}
