import { PassThrough, type Readable } from 'node:stream';
import type { Host, HostProcess } from '@deploykit/core';
import type { SourcePart } from './source-plan.js';

/** A part's producer process, its output, and the stderr it wrote so far (collected from its start). */
export interface StartedProducer {
  readonly process: HostProcess;
  readonly stdout: Readable;
  readonly stderr: string[];
}

/** Bytes a producer started ahead may write before it blocks on its output (it waits for its part's turn). */
export const AHEAD_BUFFER_BYTES = 1024 * 1024;

/**
 * Starts a part's producer on this host. One started `ahead` of its part gets its output taken into
 * a buffer at once: node discards a child's unread stdout when the child exits (flushStdio), so a
 * small part's producer that ends before its turn would lose its bytes. When the buffer is full the
 * pipe stops, and the producer blocks until the part is written.
 */
export function startProducer(host: Host, source: SourcePart, ahead = false): StartedProducer {
  const process = host.spawn({
    argv: source.producer,
    env: source.producerEnv,
    label: `producer ${source.part.id}`,
    maxBuffer: 64 * 1024,
    ...(source.producerInput !== undefined ? { input: source.producerInput } : {}),
  });
  const stderr: string[] = [];
  process.stderr.on('data', (chunk: Buffer) => {
    stderr.push(chunk.toString('utf8'));
    if (stderr.length > 64) stderr.splice(0, stderr.length - 64);
  });
  return {
    process,
    stdout: ahead ? process.stdout.pipe(new PassThrough({ highWaterMark: AHEAD_BUFFER_BYTES })) : process.stdout,
    stderr,
  };
}

/** True for a producer that reads the Borg repository (borg export-tar or extract, also behind bash). */
export function readsBorgRepository(source: SourcePart): boolean {
  return source.producer.includes('borg');
}

/**
 * Runs async work one at a time, in call order: borg 1.2.4's shared-lock roster is not safe for
 * concurrent readers of one repository (measured: a reader failed with `KeyError: ('<host id>',
 * <pid>, 0)` while two others read), so a run's borg processes never overlap each other.
 */
export function oneAtATime(): <T>(work: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return (work) => {
    const run = tail.then(work, work);
    tail = run.catch(() => undefined);
    return run;
  };
}
