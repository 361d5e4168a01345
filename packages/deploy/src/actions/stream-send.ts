import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  controlDirParents,
  findProcessesByEnvironment,
  findSshMasters,
  isProcessRunning,
  LocalHost,
  makeControlDir,
  stopProcesses,
} from '@deploykit/host';
import {
  runStream,
  type ConsumerSpec,
  type StreamEvent,
  type StreamResult,
  type TransportName,
  type TransportOptions,
} from '@deploykit/transport';
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
  /** The run this stream belongs to (`--run-id`, e.g. the migration's); default: this command's. */
  readonly runId?: string;
  /** Aborts the stream: every stage on both hosts stops and its temp and staging dirs go. */
  readonly signal?: AbortSignal;
}

/** Environment variable naming the pid of the `deploy stream send` that started a process. */
export const STREAM_SENDER_ENV = 'DEPLOY_STREAM_SENDER';

/** Prefix of the ssh control dir of a `stream send` of `runId` in process `pid`. */
function sendControlDirPrefix(runId: string, pid: number): string {
  return `dk-${runId}-send${pid}-cm-`;
}

/**
 * Removes what a killed `deploy stream send` of `runId` left on this host (its owner, named in the
 * dir names, no longer runs): its processes (found by DEPLOY_RUN_ID and DEPLOY_STREAM_SENDER, e.g.
 * an ssh master or a producer) and its temp dirs (`dk-<run>-send<pid>-cm-*` for the ssh control
 * socket, `dk-<run>-stream<pid>-*` for the attempt). A send of the run that still runs is left
 * alone. Returns what it did.
 */
export async function recoverStreamSends(runId: string): Promise<string[]> {
  const done: string[] = [];
  const owned = new RegExp(`^dk-${runId.replace(/[.]/g, '\\.')}-(?:send|stream)(\\d+)-`);
  const dead = new Map<number, string[]>();
  for (const parent of new Set([tmpdir(), ...controlDirParents()])) {
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      const match = owned.exec(name);
      if (!match) continue;
      const owner = Number(match[1]);
      if (owner === process.pid || isProcessRunning(owner)) continue;
      dead.set(owner, [...(dead.get(owner) ?? []), join(parent, name)]);
    }
  }
  for (const [owner, paths] of dead) {
    // Its processes first (an ssh master holds its socket in the control dir), then its dirs.
    const masters = paths.flatMap((path) => findSshMasters(path));
    const stopped = await stopProcesses([
      ...findProcessesByEnvironment({ DEPLOY_RUN_ID: runId, [STREAM_SENDER_ENV]: String(owner) }),
      ...masters,
    ]);
    if (stopped.length > 0) done.push(`stopped ${stopped.length} process(es) of the killed send ${owner}`);
    for (const path of paths) {
      await rm(path, { recursive: true, force: true });
      done.push(`removed ${path}`);
    }
  }
  return done;
}

/** Runs one stream from this host to `--to` (or this host for `local`); returns its StreamResult. */
export async function sendStream(context: CommandContext, options: SendStreamOptions): Promise<StreamResult> {
  if (options.transport !== 'local' && options.to === undefined) {
    throw new UsageError('STREAM_NO_TARGET', `the ${options.transport} transport needs a target host`, {
      hint: 'Add --to HOST (a host named in the global config).',
    });
  }
  if (options.producer === undefined && options.producerStream === undefined) {
    throw new UsageError('STREAM_NO_PRODUCER', 'nothing to send: give --producer or pipe the payload into stdin', {
      hint: 'Example: --producer \'["pg_dump","-Fc","notes"]\'',
    });
  }
  const runId = options.runId ?? context.runId;
  // Every process this send starts carries the run id and our pid: a later run or `deploy stream
  // cleanup --run-id` finds them if we are killed (an ssh master outlives us).
  process.env.DEPLOY_RUN_ID = runId;
  process.env[STREAM_SENDER_ENV] = String(process.pid);
  // A send of this run that was killed before: its leftovers go now.
  for (const line of await recoverStreamSends(runId))
    context.bus.emit('stream.recovered', { message: `run ${runId}: ${line}` });
  const source = new LocalHost(context.hostContext.hostName);
  let target: Host = source;
  let controlDir: string | undefined;
  if (options.transport !== 'local') {
    // The control dir carries the run id and our pid (a later run removes it if we are killed); it
    // fits a socket path whatever TMPDIR is (then under /tmp or /run/user/<uid>).
    controlDir = makeControlDir(sendControlDirPrefix(runId, process.pid));
    try {
      target = await resolveNamedHost(options.to!, context.configPath ?? context.options.config, controlDir);
    } catch (error) {
      await rm(controlDir, { recursive: true, force: true });
      throw error;
    }
  }
  try {
    return await runStream({
      name: options.name,
      transport: options.transport,
      source,
      target,
      producer: options.producer ?? ['<stdin>'],
      ...(options.producerStream === undefined ? {} : { producerStream: options.producerStream }),
      consumer: options.consumer,
      runId,
      ...(options.stallSeconds === undefined ? {} : { stallSeconds: options.stallSeconds }),
      ...(options.readySeconds === undefined ? {} : { readySeconds: options.readySeconds }),
      ...(options.retries === undefined ? {} : { retries: options.retries }),
      ...(options.estimatedBytes === undefined ? {} : { estimatedBytes: options.estimatedBytes }),
      ...(options.transportOptions === undefined ? {} : { transportOptions: options.transportOptions }),
      ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } finally {
    await target.close();
    if (controlDir !== undefined) await rm(controlDir, { recursive: true, force: true });
  }
}
