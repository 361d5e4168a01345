import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { secret, type Secret } from '@deploykit/core';
import { StageFailureError, tailText, type StageFailure } from '../pipeline/stage-failure.js';
import { buildFflEnv, buildFflShareArgv } from './ffl-argv.js';
import { locateFflBinary, resolveFflBinary } from './ffl-binary.js';
import { mapFflHookEvent, tailFflHookFile } from './ffl-hook.js';
import { waitAtMost } from './pipe-session.js';
import { buildReceiverArgv, PICKUP_CODE_ENV } from './receiver-argv.js';
import { describeExit, startReceiverProcess, type ReceiverProcess } from './receiver-process.js';
import { checkDeployOnHost } from './ssh.js';
import type { ReceiverDone, SenderSession, Transport } from './transport.js';

/** How long the ffl sender may take to exit after delivery before it gets SIGINT. */
const SENDER_EXIT_GRACE_MS = 15_000;

/** ffl: FastFileLink share on the source, `ffl download --stdout` on the target; no SSH trust needed for the data. */
export const fflTransport: Transport = {
  name: 'ffl',
  summary: 'FastFileLink: WebRTC direct path with relay fallback, end-to-end encrypted, no SSH trust for the data',
  guarantees: {
    encryption: 'ffl --e2ee (AES-256-GCM end to end) + pickup code',
    needsSshTrust: false,
    stagedBytes: 'none (--stdin-cache off; 32 MiB in-memory replay window)',
    retry: 'whole stream re-run from the producer with a new link and code',
    pathDetection: 'direct (WebRTC) or relay (HTTPS via tunnel) from hook events',
  },
  async preflight(context) {
    const ffl = context.options.ffl ?? {};
    // A URL-configured binary is fetched at start; only PATH/configured paths can be checked here.
    if (ffl.url === undefined || ffl.path !== undefined) await locateFflBinary(context.source, ffl);
    await locateFflBinary(context.target, { ...(ffl.searchDirs ? { searchDirs: ffl.searchDirs } : {}) });
    await checkDeployOnHost(context.target, context.deployCommand);
  },
  async start(context): Promise<SenderSession> {
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
    const output: string[] = [];
    const keep = (chunk: Buffer): void => {
      output.push(chunk.toString('utf8'));
      if (output.length > 64) output.splice(0, output.length - 64);
    };
    sender.stdout.on('data', keep);
    sender.stderr.on('data', keep);
    let receiver: ReceiverProcess | undefined;
    let delivered = false;
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
        }
        else if (signal.kind === 'connected' && !connected) {
          connected = true;
          context.emit({ kind: 'connected', stream: context.stream });
        } else if (signal.kind === 'path') context.emit({ kind: 'path', stream: context.stream, path: signal.path });
        else if (signal.kind === 'progress') transportBytes = Math.max(transportBytes, signal.bytes);
        else if (signal.kind === 'delivered') delivered = true;
        else if (signal.kind === 'failed') report({ stage: 'sender', code: signal.code, message: signal.message, hint: 'See the ffl output tail; retry, or choose --transport ssh where SSH trust exists.' });
      }
    });
    const senderExit = sender.wait().then((result) => {
      if (result.exitCode !== 0 || result.signal !== null) {
        const failure: StageFailure = {
          stage: 'sender',
          code: 'FFL_SENDER_FAILED',
          message: `ffl share on ${context.source.name} ended with ${describeExit(result)}`,
          exitCode: result.exitCode,
          signal: result.signal,
          stderrTail: tailText(output.join(''), context.secrets),
          at: Date.now(),
          hint: 'See the ffl output tail (tunnel, network or flags); retry, or choose --transport ssh.',
        };
        context.report(failure);
        throw new StageFailureError(failure);
      }
      return result;
    });
    senderExit.catch(() => undefined);
    const ready = (async () => {
      const ticket = await Promise.race([link, senderExit.then(() => Promise.reject(new Error('ffl share ended before printing its link')))]);
      receiver = startReceiverProcess(context, {
        host: context.target,
        argv: buildReceiverArgv({
          deployCommand: context.deployCommand,
          transport: 'ffl',
          stream: context.stream,
          runId: context.runId,
          consumer: context.consumer,
          stallSeconds: context.stallSeconds,
          link: ticket,
        }),
        env: pickupCode === undefined ? {} : { [PICKUP_CODE_ENV]: pickupCode },
        stdin: 'ignore',
        forwardLinkEvents: false,
      });
      context.emit({ kind: 'ready', stream: context.stream, ticket });
      await receiver.ready;
    })();
    ready.catch(() => undefined);
    const finished = (async (): Promise<ReceiverDone> => {
      await ready;
      const done = await receiver!.finished;
      // The sender exits a few seconds after the last byte (ACK wait); give it that, then SIGINT.
      await waitAtMost(senderExit, SENDER_EXIT_GRACE_MS);
      if (!delivered) sender.kill('SIGINT');
      await stopTail();
      return done;
    })();
    finished.catch(() => undefined);
    let aborted: Promise<void> | undefined;
    return {
      sink,
      ready,
      finished,
      consumerBytes: () => Math.max(receiver?.consumerBytes() ?? 0, transportBytes),
      abort() {
        aborted ??= (async () => {
          // SIGINT is ffl's clean stop (events, cache removed); SIGTERM/SIGKILL leave files behind.
          sender.kill('SIGINT');
          receiver?.process.kill('SIGTERM');
          await Promise.all([waitAtMost(senderExit, 3000), waitAtMost(receiver?.exited ?? Promise.resolve(), 3000)]);
          sender.kill('SIGKILL');
          receiver?.process.kill('SIGKILL');
          await stopTail();
        })();
        return aborted;
      },
    };
  },
};
