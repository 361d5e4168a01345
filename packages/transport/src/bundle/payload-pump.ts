/**
 * The source's payload pump (docs/bundle.md 8.1, decision 0016): a small Python program that copies a
 * part's payload from the producer's file descriptor straight into the bundle's sink as D and Z records,
 * hashing it on the way, so node is not in the byte path. BundleWriter.writePart uses it when both
 * streams have a file descriptor and python3 >= 3.8 is found; everything else takes the node path.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { PUMP_PY } from './payload-pump.py.js';

/** What the pump reports at its end. */
export interface PumpResult {
  /** Payload bytes read and hashed (the prefix included). */
  readonly bytes: number;
  readonly sha256: string;
  /** Bytes it wrote to the sink: its D and Z records. */
  readonly wireBytes: number;
  /** It stopped on SIGTERM (the bundle is aborted); its last record is whole. */
  readonly stopped: boolean;
  /** Its own CPU seconds. */
  readonly user: number;
  readonly system: number;
}

/** How a pump run ended. */
export type PumpOutcome =
  | { readonly kind: 'done'; readonly result: PumpResult }
  /** The sink failed under the pump (EPIPE: the receiving side went away). */
  | {
      readonly kind: 'sink-failed';
      readonly errno: number | null;
      readonly message: string;
      readonly wireBytes: number;
    }
  /** The pump itself failed (crashed, killed, no final line); the sink may hold half a record. */
  | { readonly kind: 'failed'; readonly message: string };

/** A running pump. */
export interface RunningPump {
  readonly pid: number | undefined;
  /** Payload bytes read so far (from its progress lines, about every 250 ms). */
  readonly bytes: () => number;
  /** Bytes it wrote to the sink so far (from its progress lines). */
  readonly wireBytes: () => number;
  /** Whether it last reported waiting for the sink to take bytes. */
  readonly blocked: () => boolean;
  readonly outcome: Promise<PumpOutcome>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the outcome. */
  stop(graceMs?: number): Promise<PumpOutcome>;
}

/** The underlying file descriptor of a net.Socket/pipe stream (a spawned child's stdio), undefined for any other stream. */
export function streamFd(stream: Readable | Writable): number | undefined {
  const handle = (stream as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

let pythonChecked: Promise<boolean> | undefined;

/** Whether `python3` (>= 3.8) runs here; asked once per process. */
export function pumpPythonAvailable(): Promise<boolean> {
  pythonChecked ??= new Promise((resolve) => {
    execFile(
      'python3',
      ['-c', 'import hashlib, resource, sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)'],
      { timeout: 10_000 },
      (error) => resolve(error === null),
    );
  });
  return pythonChecked;
}

/** Whether the pump may be used at all: not when DEPLOY_BUNDLE_PUMP=0. */
export function pumpEnabled(): boolean {
  return process.env['DEPLOY_BUNDLE_PUMP'] !== '0';
}

interface SocketHandle {
  readStop(): number;
  reading: boolean;
}

/** A source node stopped reading, with what it had read already. */
export interface DetachedSource {
  readonly source: Readable;
  readonly prefix: Buffer | undefined;
  /** Gives the stream back to node (after the pump); `resume` lets it read to its EOF. */
  restore(resume: boolean): void;
  /** Gives the stream back untouched, the prefix in front, paused: for the node path after all. */
  reattach(): void;
}

/**
 * Stops node reading `source` (a socket or pipe of a child) and takes what it had read already, so the
 * pump is its only reader. Must run synchronously when writePart takes the source: once the producer
 * exits, node's child_process resumes a stdout nobody listens to (flushStdio) and drops its bytes,
 * which the lab caught as a 0-byte part when writePart awaited first. Marked as reading, the handle
 * is not started again by that resume. This uses net.Socket's handle (`_handle.readStop()`,
 * `_handle.reading`): no public API stops a socket's reads, and two readers of one descriptor would
 * split the payload between them.
 */
export function detachSource(source: Readable): DetachedSource {
  const handle = (source as unknown as { _handle: SocketHandle })._handle;
  source.pause();
  handle.readStop();
  // Marked as reading so that read() below (and a resume() by flushStdio) does not start the handle
  // again: net.Socket._read checks it.
  handle.reading = true;
  const prefix = (source.readableLength > 0 ? (source.read() as Buffer | null) : null) ?? undefined;
  return {
    source,
    prefix,
    restore: (resume) => {
      handle.reading = false;
      // At the producer's EOF node sees the EOF too: 'end' and 'close' follow as on the node path.
      if (resume) source.resume();
    },
    reattach: () => {
      source.pause();
      handle.reading = false;
      if (prefix) source.unshift(prefix);
    },
  };
}

/** Whether `source` can be handed to the pump: a child's socket or pipe that node has not seen end, read by nobody else. */
export function pumpableSource(source: Readable): boolean {
  const state = (source as unknown as { _readableState?: { ended?: boolean } })._readableState;
  const handle = (source as unknown as { _handle?: Partial<SocketHandle> | null })._handle;
  return (
    streamFd(source) !== undefined &&
    state?.ended !== true &&
    // Someone else taking its chunks would lose them to the pump.
    source.listenerCount('data') === 0 &&
    typeof handle?.readStop === 'function' &&
    typeof handle.reading === 'boolean'
  );
}

/**
 * Starts the pump on `source` -> `sink`. The caller has made sure nothing of its own is still buffered
 * in `sink` and writes nothing to it until the outcome settles.
 */
export function startPump(
  detached: DetachedSource,
  sink: Writable,
  options: { zeroRuns: boolean; kernelBuffers?: boolean },
): RunningPump {
  const { source, prefix, restore } = detached;
  const buffers = options.kernelBuffers ?? process.env['DEPLOY_BUNDLE_PUMP_BUFFERS'] !== '0';
  let child: ChildProcess;
  try {
    child = spawn(
      'python3',
      ['-c', PUMP_PY, options.zeroRuns ? '1' : '0', String(prefix?.length ?? 0), buffers ? '1' : '0'],
      {
        // A stream entry hands the stream's descriptor to the child (child_process docs, options.stdio).
        // At fds 4 and 5, not 0 and 1: libuv makes a child's fds 0-2 blocking, and the flag is on the
        // open file description node shares, so node's own sink would turn blocking too (measured).
        stdio: ['ignore', 'ignore', 'pipe', 'pipe', source, sink],
      },
    );
  } catch (error) {
    detached.reattach();
    throw error;
  }
  const control = child.stdio[3] as unknown as (Readable & Writable) | null;
  let bytes = 0;
  let wireBytes = 0;
  let blocked = false;
  let final: PumpResult | undefined;
  let sinkFailure: { errno: number | null; message: string; wireBytes: number } | undefined;
  let stderr = '';
  let pending = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4096);
  });
  control?.on('error', () => undefined);
  control?.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      let report: Record<string, unknown>;
      try {
        report = JSON.parse(line) as Record<string, unknown>;
      } catch {
        stderr += `\nunreadable report line: ${line.slice(0, 200)}`;
        continue;
      }
      if (typeof report['bytes'] === 'number') bytes = report['bytes'];
      if (typeof report['wireBytes'] === 'number') wireBytes = report['wireBytes'];
      if (typeof report['blocked'] === 'boolean') blocked = report['blocked'];
      if (report['done'] === true) {
        final = {
          bytes: Number(report['bytes']),
          sha256: String(report['sha256']),
          wireBytes: Number(report['wireBytes']),
          stopped: report['stopped'] === true,
          user: Number(report['user']),
          system: Number(report['system']),
        };
        blocked = false;
      } else if (report['error'] === 'sink') {
        sinkFailure = {
          errno: typeof report['errno'] === 'number' ? report['errno'] : null,
          message: String(report['message']),
          wireBytes: Number(report['wireBytes']),
        };
      }
    }
  });
  if (prefix) control?.write(prefix);
  const outcome = new Promise<PumpOutcome>((resolve) => {
    const settle = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
      const done = (result: PumpOutcome): void => {
        restore(result.kind === 'done' && !result.result.stopped);
        resolve(result);
      };
      if (final && code === 0) return done({ kind: 'done', result: final });
      if (sinkFailure) return done({ kind: 'sink-failed', ...sinkFailure });
      const how = spawnError
        ? `could not start python3 (${spawnError.message})`
        : signal
          ? `was killed by ${signal}`
          : `exited with code ${code}`;
      const tail = stderr.trim().split('\n').slice(-6).join('\n');
      done({ kind: 'failed', message: `the bundle payload pump ${how}${tail ? `: ${tail}` : ''}` });
    };
    child.once('error', (error) => {
      if (child.pid === undefined) settle(null, null, error);
    });
    // 'close': the report socket is read to its end too, so the final line is in.
    child.once('close', (code, signal) => settle(code, signal));
  });
  return {
    pid: child.pid,
    bytes: () => bytes,
    wireBytes: () => wireBytes,
    blocked: () => blocked,
    outcome,
    stop: async (graceMs = 2000) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const result = await outcome;
        clearTimeout(timer);
        return result;
      }
      return outcome;
    },
  };
}
