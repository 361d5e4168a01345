import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import type { Arg, HostProcess, RunResult, Secret } from '@deploykit/core';
import { tailText } from '../pipeline/stage-failure.js';
import { settlesWithin, waitAtMost } from '../pipeline/timing.js';
import { buildFflEnv } from './ffl-argv.js';
import { locateFflBinary } from './ffl-binary.js';
import { startFflShare } from './ffl-share.js';
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

/**
 * A refused pickup code in ffl's failure line (reference/ffl.md §4): 401 for a wrong or missing code,
 * 429 once 5 failed checks (2 per attempt, so the 3rd wrong attempt) locked the share for 300 s.
 */
export function classifyPickupFailure(line: string): { code: string; message: string; hint: string } | undefined {
  if (/\b429\b/.test(line)) {
    return {
      code: 'FFL_PICKUP_LOCKED',
      message: 'ffl locked the link after repeated wrong pickup codes (HTTP 429)',
      hint: 'Wait 5 minutes and enter the right code, or start a new pairing on the source for a new link and code.',
    };
  }
  if (/\b401\b/.test(line)) {
    return {
      code: 'FFL_PICKUP_REFUSED',
      message: 'the pickup code was refused (HTTP 401)',
      hint: "Check the code on the source's terminal and run again; the 3rd wrong code locks the link for 5 minutes.",
    };
  }
  return undefined;
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
  // ffl reads the code only from its argv (reference §1: no environment variable), so ours comes by env, file or prompt.
  receiverCredential: { label: 'pickup code', envName: PICKUP_CODE_ENV, pattern: /^\d{6}$/, shape: '6 digits' },
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
    const share = await startFflShare({
      host: context.source,
      dir: context.attemptDir,
      name: context.stream,
      ...(context.options.ffl ? { ffl: context.options.ffl } : {}),
      secrets: context.secrets,
      emit: context.emit,
      report: context.report,
    });
    const output = new PassThrough();
    const errors = new PassThrough();
    let command: HostProcess | undefined;
    let commandEnded = false;
    let aborted: Promise<void> | undefined;
    const ready = (async () => {
      const ticket = await share.link;
      // Aborted while waiting for the link (the readiness window ran out): start nothing on the target.
      if (aborted !== undefined) throw new Error('the stream was aborted before the link was shared');
      const pickupCode = share.pickupCode();
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
        const result = await share.exit;
        output.end();
        errors.end();
        return {
          result,
          failure: {
            stage: 'sender',
            code: 'FFL_SENDER_FAILED',
            message: `ffl share on ${context.source.name} ended with ${describeExit(result)}`,
            hint: 'See the ffl output tail (tunnel, network or flags); retry, or choose --transport ssh.',
          },
        };
      }
      const result = await command!.wait();
      commandEnded = true;
      // The sender exits a few seconds after the last byte (ACK wait); give it that, then SIGINT.
      await waitAtMost(share.exit, SENDER_EXIT_GRACE_MS);
      if (!share.delivered()) await share.stop();
      return { result };
    })();
    return {
      sink: share.sink,
      output,
      errors,
      ready,
      connected: share.connected,
      exited,
      interactive: false,
      transportBytes: share.transportBytes,
      stagedBytes: () => 0,
      interrupt: () => command?.kill('SIGINT'),
      abort() {
        aborted ??= (async () => {
          // SIGINT is ffl's clean stop (events, cache removed); SIGTERM/SIGKILL leave files behind.
          if (!commandEnded) command?.kill('SIGTERM');
          await Promise.all([share.stop(), waitAtMost(command?.wait() ?? Promise.resolve(), 3000)]);
          if (!commandEnded) command?.kill('SIGKILL');
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
      const pickup = line === undefined || senderGone ? undefined : classifyPickupFailure(line);
      return {
        ...(senderGone ? { stage: 'sender' as const } : {}),
        code: senderGone ? 'FFL_SENDER_GONE' : (pickup?.code ?? 'FFL_DOWNLOAD_FAILED'),
        message: `${senderGone ? 'the sending ffl is gone: ' : pickup ? `${pickup.message}: ` : ''}ffl download ${status}${line ? `: ${line}` : ''}`,
        ...(pickup ? { hint: pickup.hint } : {}),
        exitCode: result.exitCode,
        stderrTail: tailText(result.stderr + (line ? `\n${line}` : ''), secrets, 20),
      };
    };
    let closed: Promise<void> | undefined;
    return {
      stream: tail,
      paths: [root],
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
