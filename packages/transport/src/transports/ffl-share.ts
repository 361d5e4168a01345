import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { secret, type Host, type RunResult, type Secret } from '@deploykit/core';
import type { StreamEvent } from '../contract.js';
import { tailText, type StageFailure } from '../pipeline/stage-failure.js';
import { waitAtMost } from '../pipeline/timing.js';
import { buildFflEnv, buildFflShareArgv } from './ffl-argv.js';
import { resolveFflBinary, type FflBinaryOptions } from './ffl-binary.js';
import { mapFflHookEvent, tailFflHookFile } from './ffl-hook.js';
import { describeExit } from './receiver-process.js';

/** What starting an ffl share needs: the host it runs on, a fresh dir of its own, and where its signals go. */
export interface FflShareOptions {
  readonly host: Host;
  /** A fresh dir for ffl's cwd, storage, hook and --json files (and a downloaded binary); the caller removes it. */
  readonly dir: string;
  /** The download's file name (ffl --name). */
  readonly name: string;
  readonly ffl?: FflBinaryOptions & { readonly env?: Readonly<Record<string, string>> };
  /** The pickup code is added here as soon as ffl generated it (masked in every tail and message). */
  readonly secrets: Secret[];
  /** Stream events of the share: connected, path. */
  emit(event: StreamEvent): void;
  /** A failure ffl reported (hook) or its exit said. */
  report(failure: StageFailure): void;
}

/** A running `ffl share -` (reference/ffl.md §1): its stdin, its link and code, and what it says about the download. */
export interface FflShare {
  /** ffl's stdin: the bytes to share (ffl reads them only once a receiver started a transfer, §5). */
  readonly sink: Writable;
  /** The link, once ffl printed it; rejects when ffl ended before that. */
  readonly link: Promise<string>;
  /** The pickup code ffl generated (known with the link): a Secret, never in argv, events or logs. */
  pickupCode(): Secret | undefined;
  /** Resolves when a receiver first reached the share (an offer or a download started). */
  readonly connected: Promise<void>;
  /** True once ffl reported the download complete (a receipt, or its one download reached). */
  delivered(): boolean;
  /** Bytes ffl reports on the wire (its hook's counters). */
  transportBytes(): number;
  /** ffl's exit (never rejects); a non-zero exit or a signal has been reported as a sender failure. */
  readonly exit: Promise<RunResult>;
  /** The last lines ffl printed (stdout and stderr: it prints its errors on stdout), secrets masked. */
  outputTail(): string;
  /** Stops the share: SIGINT (ffl's clean stop: events, cache removed), then SIGKILL. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `ffl share -` with the flags of reference/ffl.md §6 (no stdin cache, one download, E2EE, a
 * pickup code ffl generates) in a fresh cwd and storage dir, and follows its hook file for the link,
 * the code, the path, the bytes and the delivery.
 */
export async function startFflShare(options: FflShareOptions): Promise<FflShare> {
  const cwd = join(options.dir, 'ffl-cwd');
  const storage = join(options.dir, 'ffl-storage');
  const downloads = join(options.dir, 'ffl-bin');
  await Promise.all([mkdir(cwd), mkdir(storage), mkdir(downloads)]);
  const binary = await resolveFflBinary(options.host, options.ffl ?? {}, downloads);
  const hookFile = join(options.dir, 'ffl-hook.jsonl');
  const sender = options.host.spawn({
    argv: buildFflShareArgv({
      binary: binary.path,
      hookFile,
      jsonFile: join(options.dir, 'ffl-share.json'),
      name: options.name,
    }),
    cwd,
    env: buildFflEnv(storage, options.ffl?.env),
    stdin: 'pipe',
    label: `ffl share ${options.name}`,
    maxBuffer: 64 * 1024,
  });
  const sink = sender.stdin!;
  sink.on('error', () => undefined);
  // ffl prints its errors on stdout (reference §1.1, §8), so both streams feed the tail.
  const output: string[] = [];
  const keep = (chunk: Buffer): void => {
    output.push(chunk.toString('utf8'));
    if (output.length > 64) output.splice(0, output.length - 64);
  };
  sender.stdout.on('data', keep);
  sender.stderr.on('data', keep);
  let pickupCode: Secret | undefined;
  let delivered = false;
  let transportBytes = 0;
  let resolveLink!: (link: string) => void;
  const link = new Promise<string>((resolve) => (resolveLink = resolve));
  let resolveConnected!: () => void;
  const connected = new Promise<void>((resolve) => (resolveConnected = resolve));
  let isConnected = false;
  const report = (failure: Omit<StageFailure, 'at'>): void => options.report({ ...failure, at: Date.now() });
  const stopTail = tailFflHookFile(hookFile, (event) => {
    for (const signal of mapFflHookEvent(event)) {
      if (signal.kind === 'link') {
        if (signal.pickupCode !== undefined && pickupCode === undefined) {
          pickupCode = secret(signal.pickupCode);
          options.secrets.push(pickupCode);
        }
        resolveLink(signal.link);
      } else if (signal.kind === 'connected' && !isConnected) {
        isConnected = true;
        resolveConnected();
        options.emit({ kind: 'connected', stream: options.name });
      } else if (signal.kind === 'path') options.emit({ kind: 'path', stream: options.name, path: signal.path });
      else if (signal.kind === 'progress') transportBytes = Math.max(transportBytes, signal.bytes);
      else if (signal.kind === 'delivered') delivered = true;
      else if (signal.kind === 'failed')
        report({
          stage: 'sender',
          code: signal.code,
          message: signal.message,
          hint: 'See the ffl output tail; retry, or choose --transport ssh where SSH trust exists.',
        });
    }
  });
  const outputTail = (): string => tailText(output.join(''), options.secrets);
  const exit = sender.wait().then(async (result) => {
    // A crashed ffl is reported at once: on a loaded machine the broken pipe it caused otherwise
    // outran this report, and the source blamed its own write instead of the dead share.
    if (result.exitCode !== 0 || result.signal !== null) {
      report({
        stage: 'sender',
        code: 'FFL_SENDER_FAILED',
        message: `ffl share on ${options.host.name} ended with ${describeExit(result)}`,
        exitCode: result.exitCode,
        signal: result.signal,
        stderrTail: outputTail(),
        hint: 'See the ffl output tail (tunnel, network or flags); retry, or choose --transport ssh.',
      });
    }
    // The hook's last events (a delivery, a failure) are read before anyone looks at the exit.
    await stopTail();
    return result;
  });
  let stopping: Promise<void> | undefined;
  return {
    sink,
    link: Promise.race([
      link,
      exit.then((result) =>
        Promise.reject(
          new Error(`ffl share ended before printing its link (${describeExit(result)}): ${outputTail()}`),
        ),
      ),
    ]),
    pickupCode: () => pickupCode,
    connected,
    delivered: () => delivered,
    transportBytes: () => transportBytes,
    exit,
    outputTail,
    stop(graceMs = 3000) {
      stopping ??= (async () => {
        sender.kill('SIGINT');
        await waitAtMost(exit, graceMs);
        sender.kill('SIGKILL');
        await exit;
      })();
      return stopping;
    },
  };
}
