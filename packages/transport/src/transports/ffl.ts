import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { secret, type Arg, type HostProcess, type RunResult, type Secret } from '@deploykit/core';
import { tailText, type StageFailure } from '../pipeline/stage-failure.js';
import { settlesWithin, waitAtMost } from '../pipeline/timing.js';
import { buildFflEnv, buildFflShareArgv } from './ffl-argv.js';
import { locateFflBinary, resolveFflBinary } from './ffl-binary.js';
import { mapFflHookEvent, tailFflHookFile } from './ffl-hook.js';
import { describeExit } from './receiver-process.js';
import { checkDeployOnHost } from './ssh.js';
import type { InputFailure, ReceiverInput, SenderChannel, SenderChannelExit, Transport } from './transport.js';

/** How long the ffl sender may take to exit after delivery before it gets SIGINT. */
const SENDER_EXIT_GRACE_MS = 15_000;
/** The environment variable carrying the ffl pickup code to the target command (never argv on our side). */
export const PICKUP_CODE_ENV = 'DEPLOY_PICKUP_CODE';
/** How much of ffl's stdout tail we keep: its failure text is appended there (reference/ffl.md §2.2). */
const STDOUT_TAIL_BYTES = 4096;

/** Builds the ffl receiver argv (reference/ffl.md §2); the pickup code stays a Secret in displays. */
export function buildFflDownloadArgv(fflPath: string, link: string, pickupCode?: Secret): Arg[] {
  return [fflPath, 'download', link, '--stdout', ...(pickupCode ? ['--pickup-code', pickupCode] : [])];
}

/** Picks ffl's own failure line out of the text it appended to stdout. */
export function fflFailureLine(stdoutTail: Buffer): string | undefined {
  const found = /Oops, something went wrong:[^\n]*/.exec(stdoutTail.toString('latin1'))?.[0];
  // Read as latin1 to survive binary payload before it; the line itself is UTF-8 text.
  return found === undefined ? undefined : Buffer.from(found, 'latin1').toString('utf8');
}

/**
 * True when ffl's failure line says the *sending* ffl is gone: its WebRTC connection broke and the
 * HTTP fallback could not even fetch the share's metadata (reference §2.4, §8: `WebRTC connection
 * failed before download completed. HTTP: Failed to get file metadata: ... Connection refused`).
 */
export function isFflSenderGone(failureLine: string): boolean {
  return /WebRTC connection failed before download completed\. HTTP: Failed to get file metadata: /.test(failureLine);
}

/** Passes bytes through unchanged and keeps the last few KiB (ffl appends its error text to the payload). */
class TailKeeper extends Transform {
  tail: Buffer = Buffer.alloc(0);
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const joined = Buffer.concat([this.tail, chunk.subarray(Math.max(0, chunk.length - STDOUT_TAIL_BYTES))]);
    this.tail = joined.subarray(Math.max(0, joined.length - STDOUT_TAIL_BYTES));
    callback(null, chunk);
  }
}

/** ffl: FastFileLink share on the source, `ffl download --stdout` on the target; no SSH trust needed for the data. */
export const fflTransport: Transport = {
  name: 'ffl',
  summary: 'FastFileLink: WebRTC direct path with relay fallback, end-to-end encrypted, no SSH trust for the data',
  interactive: false,
  guarantees: {
    encryption: 'ffl --e2ee (AES-256-GCM end to end) + pickup code',
    needsSshTrust: false,
    stagedBytes: 'none (--stdin-cache off; 32 MiB in-memory replay window)',
    retry: 'a new share (new link and code), resuming after the parts the target verified',
    pathDetection: 'direct (WebRTC) or relay (HTTPS via tunnel) from hook events',
  },
  async preflight(context) {
    const ffl = context.options.ffl ?? {};
    // A URL-configured binary is fetched at start; only PATH/configured paths can be checked here.
    if (ffl.url === undefined || ffl.path !== undefined) await locateFflBinary(context.source, ffl);
    await locateFflBinary(context.target, { ...(ffl.searchDirs ? { searchDirs: ffl.searchDirs } : {}) });
    await checkDeployOnHost(context.target, context.deployCommand);
  },
  async openSender(context): Promise<SenderChannel> {
    // ffl generates the code (CSPRNG, reference §1 --recipient-auth); we learn it with the link.
    let pickupCode: Secret | undefined;
    const cwd = join(context.attemptDir, 'ffl-cwd');
    const storage = join(context.attemptDir, 'ffl-storage');
    const downloads = join(context.attemptDir, 'ffl-bin');
    await Promise.all([mkdir(cwd), mkdir(storage), mkdir(downloads)]);
    const binary = await resolveFflBinary(context.source, context.options.ffl ?? {}, downloads);
    const hookFile = join(context.attemptDir, 'ffl-hook.jsonl');
    const sender = context.source.spawn({
      argv: buildFflShareArgv({ binary: binary.path, hookFile, jsonFile: join(context.attemptDir, 'ffl-share.json'), name: context.stream }),
      cwd,
      env: buildFflEnv(storage, context.options.ffl?.env),
      stdin: 'pipe',
      label: `ffl share ${context.stream}`,
      maxBuffer: 64 * 1024,
    });
    const sink = sender.stdin!;
    sink.on('error', () => undefined);
    // ffl prints its errors on stdout (reference §1.1), so both streams feed the tail.
    const senderOutput: string[] = [];
    const keep = (chunk: Buffer): void => {
      senderOutput.push(chunk.toString('utf8'));
      if (senderOutput.length > 64) senderOutput.splice(0, senderOutput.length - 64);
    };
    sender.stdout.on('data', keep);
    sender.stderr.on('data', keep);
    const output = new PassThrough();
    const errors = new PassThrough();
    let command: HostProcess | undefined;
    let delivered = false;
    let commandEnded = false;
    let connected = false;
    let transportBytes = 0;
    let resolveLink!: (link: string) => void;
    const link = new Promise<string>((resolve) => (resolveLink = resolve));
    const report = (failure: Omit<StageFailure, 'at'>): void => context.report({ ...failure, at: Date.now() });
    const stopTail = tailFflHookFile(hookFile, (event) => {
      for (const signal of mapFflHookEvent(event)) {
        if (signal.kind === 'link') {
          if (signal.pickupCode !== undefined && pickupCode === undefined) {
            pickupCode = secret(signal.pickupCode);
            context.secrets.push(pickupCode);
          }
          resolveLink(signal.link);
        } else if (signal.kind === 'connected' && !connected) {
          connected = true;
          context.emit({ kind: 'connected', stream: context.stream });
        } else if (signal.kind === 'path') context.emit({ kind: 'path', stream: context.stream, path: signal.path });
        else if (signal.kind === 'progress') transportBytes = Math.max(transportBytes, signal.bytes);
        else if (signal.kind === 'delivered') delivered = true;
        else if (signal.kind === 'failed') report({ stage: 'sender', code: signal.code, message: signal.message, hint: 'See the ffl output tail; retry, or choose --transport ssh where SSH trust exists.' });
      }
    });
    const senderFailure = (result: RunResult): Omit<StageFailure, 'at'> => ({
      stage: 'sender',
      code: 'FFL_SENDER_FAILED',
      message: `ffl share on ${context.source.name} ended with ${describeExit(result)}`,
      exitCode: result.exitCode,
      signal: result.signal,
      stderrTail: tailText(senderOutput.join(''), context.secrets),
      hint: 'See the ffl output tail (tunnel, network or flags); retry, or choose --transport ssh.',
    });
    const senderExit = sender.wait().then((result) => {
      if (result.exitCode !== 0 || result.signal !== null) report(senderFailure(result));
      return result;
    });
    let aborted: Promise<void> | undefined;
    const ready = (async () => {
      const ticket = await Promise.race([link, senderExit.then(() => Promise.reject(new Error('ffl share ended before printing its link')))]);
      // Aborted while waiting for the link (the readiness window ran out): start nothing on the target.
      if (aborted !== undefined) throw new Error('the stream was aborted before the link was shared');
      command = context.target.spawn({
        argv: context.targetArgv({ from: ticket }),
        env: { ...context.targetEnv, ...(pickupCode === undefined ? {} : { [PICKUP_CODE_ENV]: pickupCode }) },
        label: `receiver ${context.stream}`,
        maxBuffer: 64 * 1024,
      });
      command.stdout.pipe(output);
      command.stderr.pipe(errors);
      context.emit({ kind: 'ready', stream: context.stream, ticket });
    })();
    ready.catch(() => undefined);
    const exited = (async (): Promise<SenderChannelExit> => {
      try {
        await ready;
      } catch {
        const result = await senderExit;
        output.end();
        errors.end();
        return { result, failure: senderFailure(result) };
      }
      const result = await command!.wait();
      commandEnded = true;
      // The sender exits a few seconds after the last byte (ACK wait); give it that, then SIGINT.
      await waitAtMost(senderExit, SENDER_EXIT_GRACE_MS);
      if (!delivered) sender.kill('SIGINT');
      await stopTail();
      return { result };
    })();
    return {
      sink,
      output,
      errors,
      ready,
      exited,
      interactive: false,
      transportBytes: () => transportBytes,
      stagedBytes: () => 0,
      interrupt: () => command?.kill('SIGINT'),
      abort() {
        aborted ??= (async () => {
          // SIGINT is ffl's clean stop (events, cache removed); SIGTERM/SIGKILL leave files behind.
          sender.kill('SIGINT');
          if (!commandEnded) command?.kill('SIGTERM');
          await Promise.all([waitAtMost(senderExit, 3000), waitAtMost(command?.wait() ?? Promise.resolve(), 3000)]);
          sender.kill('SIGKILL');
          if (!commandEnded) command?.kill('SIGKILL');
          await stopTail();
        })();
        return aborted;
      },
    };
  },
  accepts: (from) => /^https?:\/\//i.test(from),
  async openReceiver(context): Promise<ReceiverInput> {
    const fflPath = context.binaryPath ?? (await locateFflBinary(context.host)).path;
    // A fresh empty cwd (ffl loads .env from it) and storage dir; stdin /dev/null so prompts fail.
    const root = await mkdtemp(join(tmpdir(), `deploy-ffl-${context.runId}-`));
    const cwd = join(root, 'cwd');
    const storage = join(root, 'storage');
    await mkdir(cwd);
    await mkdir(storage);
    const download = context.host.spawn({
      argv: buildFflDownloadArgv(fflPath, context.from, context.credential),
      cwd,
      env: buildFflEnv(storage),
      label: `${context.label} ffl receiver`,
    });
    const tail = new TailKeeper();
    download.stdout.pipe(tail);
    const exit = download.wait();
    const secrets = context.credential === undefined ? [] : [context.credential];
    const failureOf = (result: RunResult): InputFailure | undefined => {
      if (result.exitCode === 0 && result.signal === null) return undefined;
      // ffl prints its error on stdout (after the payload); its stderr is status lines and tqdm
      // frames, which tailText drops, so the tail ends with the error line itself.
      const line = fflFailureLine(tail.tail);
      const status = result.signal ? `was killed by ${result.signal}` : `exited with code ${String(result.exitCode)}`;
      const senderGone = line !== undefined && isFflSenderGone(line);
      return {
        ...(senderGone ? { stage: 'sender' as const } : {}),
        code: senderGone ? 'FFL_SENDER_GONE' : 'FFL_DOWNLOAD_FAILED',
        message: `${senderGone ? 'the sending ffl is gone: ' : ''}ffl download ${status}${line ? `: ${line}` : ''}`,
        exitCode: result.exitCode,
        stderrTail: tailText(result.stderr + (line ? `\n${line}` : ''), secrets, 20),
      };
    };
    let closed: Promise<void> | undefined;
    return {
      stream: tail,
      secrets,
      async transportFailure(graceMs) {
        if (!(await settlesWithin(exit, graceMs))) return undefined;
        return failureOf(await exit);
      },
      onEnded(listener) {
        void exit.then((result) => listener(failureOf(result)));
      },
      async complete(graceMs) {
        if (!(await settlesWithin(exit, graceMs))) {
          // The payload is complete and verified; ffl's lingering (or its exit code) no longer matters.
          download.kill('SIGTERM');
          await exit;
        }
      },
      close() {
        closed ??= (async () => {
          download.kill('SIGTERM');
          await waitAtMost(exit, 3000);
          download.kill('SIGKILL');
          await waitAtMost(exit, 2000);
          await rm(root, { recursive: true, force: true });
        })();
        return closed;
      },
    };
  },
};
