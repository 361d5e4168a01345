import {
  DEFAULT_READY_SECONDS,
  DEFAULT_RETRIES,
  DEFAULT_STALL_SECONDS,
  describeFailure,
  listTransportNames,
  resolveTransport,
  type ConsumerSpec,
  type StreamEvent,
} from '@deploykit/transport';
import { EXIT_CODES, formatBytes, formatDuration, TransportError, UsageError } from '@deploykit/core';
import { cleanupStream, receiveStream } from '../../actions/stream-receive.js';
import { createStreamEventPublisher, createTtyProgress } from '../../actions/stream-events.js';
import { recoverStreamSends, sendStream } from '../../actions/stream-send.js';
import type { CommandContext } from '../command-context.js';
import type { CommandOutcome, DeployCommand } from '../deploy-command.js';

/** Parses a JSON array of strings given on the command line (`--producer`, `--consumer`). */
export function parseArgvJson(flag: string, value: unknown): string[] | undefined {
  if (value === undefined || value === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(String(value));
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((word) => typeof word === 'string')) {
    throw new UsageError(
      'STREAM_BAD_ARGV',
      `--${flag} must be a JSON array of strings, got ${JSON.stringify(String(value))}`,
      {
        hint: `Example: --${flag} '["pg_dump","-Fc","notes"]' (use ["sh","-c","a | b"] for a shell pipeline).`,
      },
    );
  }
  return parsed as string[];
}

/** Reads the consumer: exactly one of --into DIR and --consumer JSON. */
function readConsumer(args: Record<string, unknown>): ConsumerSpec {
  const into = typeof args.into === 'string' && args.into !== '' ? args.into : undefined;
  const argv = parseArgvJson('consumer', args.consumer);
  if ((into === undefined) === (argv === undefined)) {
    throw new UsageError('STREAM_CONSUMER', 'give exactly one of --into DIR and --consumer JSON', {
      hint: 'A tar stream goes --into a folder; anything else into a --consumer command.',
    });
  }
  return into !== undefined ? { kind: 'into', dir: into } : { kind: 'command', argv: argv! };
}

/** `--run-id`: it names temp and staging dirs, so only letters, digits, `.`, `_` and `-` (not first). */
function readRunId(args: Record<string, unknown>): string | undefined {
  if (args.runId === undefined || args.runId === '') return undefined;
  const runId = String(args.runId);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(runId)) {
    throw new UsageError(
      'STREAM_BAD_RUN_ID',
      `--run-id ${JSON.stringify(runId)} cannot name a directory: use up to 64 letters, digits, '.', '_' and '-', starting with a letter or digit`,
      {
        hint: "Pass the migration's run id as it is ($DEPLOY_RUN_ID in a bin/migrate), e.g. --run-id 20261121T202500Z-3fa9c1.",
      },
    );
  }
  return runId;
}

function readNumber(args: Record<string, unknown>, key: string): number | undefined {
  const value = args[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
    throw new UsageError('STREAM_BAD_NUMBER', `--${key} must be a non-negative number`);
  return value;
}

/** Where stream events go: the bus always, JSONL on stdout with --jsonl, a progress line on a TTY. */
function createEventSink(context: CommandContext): { onEvent: (event: StreamEvent) => void; close: () => void } {
  const tty =
    !context.options.quiet && !context.options.jsonl && !context.options.json && process.stderr.isTTY === true;
  const progress = tty ? createTtyProgress(process.stderr) : undefined;
  const publish = createStreamEventPublisher(context.bus, tty ? {} : { quietProgressEveryMs: 5000 });
  // Our stdout is the ssh channel back to the sender (receive --jsonl): when the connection is lost
  // or the sender was killed, writing to it fails with EPIPE. That must not kill us before we stop
  // the consumer and remove staging: we stop writing and finish the cleanup.
  let stdoutGone = false;
  if (context.options.jsonl) process.stdout.on('error', () => (stdoutGone = true));
  return {
    onEvent(event) {
      progress?.update(event);
      if (context.options.jsonl && !stdoutGone) process.stdout.write(`${JSON.stringify(event)}\n`);
      publish(event);
    },
    close: () => progress?.clear(),
  };
}

async function runSend(context: CommandContext, args: Record<string, unknown>): Promise<CommandOutcome> {
  const transport = resolveTransport(String(args.transport)).name;
  const producer = parseArgvJson('producer', args.producer);
  if (producer === undefined && process.stdin.isTTY) {
    throw new UsageError('STREAM_NO_PRODUCER', 'nothing to send: give --producer or pipe the payload into stdin', {
      hint: 'Example: --producer \'["pg_dump","-Fc","notes"]\'',
    });
  }
  const sink = createEventSink(context);
  const stallSeconds = readNumber(args, 'stallSeconds');
  const readySeconds = readNumber(args, 'readySeconds');
  const retries = readNumber(args, 'retries');
  const estimatedBytes = readNumber(args, 'estimatedBytes');
  const fflPath = typeof args.fflPath === 'string' ? args.fflPath : undefined;
  const fflUrl = typeof args.fflUrl === 'string' ? args.fflUrl : undefined;
  const fflSha256 = typeof args.fflSha256 === 'string' ? args.fflSha256 : undefined;
  const runId = readRunId(args);
  const result = await sendStream(context, {
    name: String(args.name),
    ...(runId === undefined ? {} : { runId }),
    // SIGTERM/Ctrl+C abort the stream: both hosts' processes stop, temp and staging dirs go.
    signal: context.signal,
    transport,
    ...(typeof args.to === 'string' ? { to: args.to } : {}),
    ...(producer === undefined ? { producerStream: process.stdin } : { producer }),
    consumer: readConsumer(args),
    ...(stallSeconds === undefined ? {} : { stallSeconds }),
    ...(readySeconds === undefined ? {} : { readySeconds }),
    ...(retries === undefined ? {} : { retries }),
    ...(estimatedBytes === undefined ? {} : { estimatedBytes }),
    transportOptions: {
      ffl: {
        ...(fflPath ? { path: fflPath } : {}),
        ...(fflUrl ? { url: fflUrl } : {}),
        ...(fflSha256 ? { sha256: fflSha256 } : {}),
      },
    },
    onEvent: sink.onEvent,
  }).finally(sink.close);
  if (!result.ok) {
    const failure = result.failure;
    throw new TransportError(
      failure?.code ?? 'STREAM_FAILED',
      `stream ${result.stream} failed after ${result.failures.length} attempt(s): ${failure ? describeFailure({ ...failure, at: Date.parse(failure.at) }) : 'unknown'}${failure?.stderrTail ? `\n  stderr tail:\n    ${failure.stderrTail.split('\n').join('\n    ')}` : ''}`,
      {
        hint: failure?.hint ?? 'Check the failing stage named above, then retry.',
        details: { result },
      },
    );
  }
  const text = `${result.stream}: ${formatBytes(result.bytes)} in ${formatDuration(result.elapsedMs)} (${formatBytes(result.rate)}/s) via ${result.transport}${result.path ? ` (${result.path})` : ''}, sha256 ${result.sha256}, ${result.retries} retr${result.retries === 1 ? 'y' : 'ies'}`;
  return { exitCode: EXIT_CODES.ok, json: result, text };
}

async function runReceive(context: CommandContext, args: Record<string, unknown>): Promise<CommandOutcome> {
  const sink = createEventSink(context);
  // The sending side stops us with SIGTERM on abort (then SIGKILL 3 s later): context.signal lets the
  // receiver kill its consumer and its transport (ffl), and remove staging and temp dirs, before we exit.
  const result = await receiveStream(context, {
    name: String(args.name),
    runId: readRunId(args) ?? context.runId,
    consumer: readConsumer(args),
    stallSeconds: readNumber(args, 'stallSeconds') ?? DEFAULT_STALL_SECONDS,
    readySeconds: readNumber(args, 'readySeconds') ?? DEFAULT_READY_SECONDS,
    from: typeof args.from === 'string' && args.from !== '' ? args.from : '-',
    ...(typeof args.ffl === 'string' ? { fflPath: args.ffl } : {}),
    deleteAfter: args.deleteAfter === true,
    onEvent: sink.onEvent,
    signal: context.signal,
  }).finally(sink.close);
  if (!result.ok) {
    throw new TransportError(
      result.code,
      `receiving ${String(args.name)} failed: ${result.stage} failed: ${result.message}`,
      {
        hint: 'Nothing was swapped into place; the sending side names the first failing stage.',
        details: { ...result },
      },
    );
  }
  return {
    exitCode: EXIT_CODES.ok,
    json: result,
    text: `${String(args.name)}: received ${formatBytes(result.bytes)} in ${formatDuration(result.elapsedMs)}, sha256 ${result.sha256}`,
  };
}

async function runCleanup(args: Record<string, unknown>): Promise<CommandOutcome> {
  const runId = readRunId(args);
  const into = typeof args.into === 'string' && args.into !== '' ? args.into : undefined;
  if (into === undefined && runId === undefined) {
    throw new UsageError(
      'STREAM_CLEANUP_WHAT',
      'stream cleanup needs --into DIR (target side) or --run-id ID (either side)',
      { hint: 'Name the folder whose staging dirs to remove, or the run whose killed sends to clean up.' },
    );
  }
  // Source side: what a killed `stream send` of the run left here (temp dirs, ssh master, producer).
  const recovered = runId === undefined ? [] : await recoverStreamSends(runId);
  // Target side: the staging dirs beside DIR.
  const removed = into === undefined ? [] : await cleanupStream(into, runId);
  const lines = [...recovered, ...removed.map((path) => `removed ${path}`)];
  return {
    exitCode: EXIT_CODES.ok,
    json: { removed, recovered },
    text: lines.length === 0 ? 'nothing to clean up' : lines.join('\n'),
  };
}

/** `deploy stream send|receive|cleanup`: the streaming building blocks a bin/migrate composes. */
export const streamCommand: DeployCommand = {
  command: 'stream <action>',
  describe: 'Send a framed stream to another host, receive one, or clean up after a failed one (docs/transports.md)',
  // send and receive clean up on SIGTERM/Ctrl+C (receive: the sending side's abort); cleanup stops at once.
  interruptible: (args) => args.action === 'receive' || args.action === 'send',
  builder: (y) =>
    y
      .positional('action', {
        choices: ['send', 'receive', 'cleanup'] as const,
        describe: 'send (source side), receive (target side), cleanup (target side)',
      })
      .option('name', { type: 'string', describe: 'Stream name (volumes, database, ...)', group: 'Stream:' })
      .option('transport', {
        type: 'string',
        default: 'ssh',
        describe: `send: how the bytes travel: ${listTransportNames().join(', ')}`,
        group: 'Send:',
      })
      .option('into', {
        type: 'string',
        describe: 'Consumer: extract a tar stream into DIR (staging dir beside it, swapped in only after success)',
        group: 'Stream:',
      })
      .option('consumer', {
        type: 'string',
        describe: 'Consumer: command reading the payload on stdin, as a JSON argv array',
        group: 'Stream:',
      })
      .option('stall-seconds', {
        type: 'number',
        describe: `Abort when no byte moved for this long, counted from the first payload byte [default ${DEFAULT_STALL_SECONDS}]`,
        group: 'Stream:',
      })
      .option('ready-seconds', {
        type: 'number',
        describe: `Abort when the first payload byte has not reached the receiver this long after the start (target start, ffl link and WebRTC setup; send passes it to receive) [default ${DEFAULT_READY_SECONDS}]`,
        group: 'Stream:',
      })
      .option('run-id', {
        type: 'string',
        describe:
          "Run id (names temp and staging dirs; send: the migration's run id; cleanup removes what a killed run left)",
        group: 'Stream:',
      })
      .option('to', { type: 'string', describe: 'send: target host, named in the global config', group: 'Send:' })
      .option('producer', {
        type: 'string',
        describe: 'send: producer command as a JSON argv array (default: read the payload from stdin)',
        group: 'Send:',
      })
      .option('retries', {
        type: 'number',
        describe: `send: re-run the whole stream this many times [default ${DEFAULT_RETRIES}]`,
        group: 'Send:',
      })
      .option('estimated-bytes', {
        type: 'number',
        describe: 'send: expected size (ETA; scp checks free space against it)',
        group: 'Send:',
      })
      .option('ffl-path', {
        type: 'string',
        describe: 'send: ffl binary on this host (default: PATH, then /opt/ffl)',
        group: 'Send:',
      })
      .option('ffl-url', {
        type: 'string',
        describe: 'send: download ffl from this URL (needs --ffl-sha256)',
        group: 'Send:',
      })
      .option('ffl-sha256', { type: 'string', describe: 'send: SHA-256 the downloaded ffl must have', group: 'Send:' })
      .option('from', {
        type: 'string',
        default: '-',
        requiresArg: true,
        describe:
          'receive: where the framed bytes come from: - (stdin: ssh, local), a file (scp), an ffl link (pickup code in env DEPLOY_PICKUP_CODE)',
        group: 'Receive:',
      })
      .option('ffl', {
        type: 'string',
        describe: 'receive (ffl link): ffl binary (default: PATH, then /opt/ffl)',
        group: 'Receive:',
      })
      .option('delete-after', {
        type: 'boolean',
        describe: 'receive (file): delete the file afterwards, whatever happens',
        group: 'Receive:',
      }),
  examples: [
    [
      `deploy stream send --name volumes --to b --transport ssh --producer '["borg","export-tar","/srv/borg::notes-1","-"]' --into /srv/apps/notes/data`,
      'Stream a Borg archive into a folder on host b',
    ],
    [
      `deploy stream send --name database --to b --transport ffl --producer '["pg_dump","-Fc","notes"]' --consumer '["pg_restore","-d","notes"]'`,
      'Move a database over ffl',
    ],
    [
      `tar -C /srv/data -c . | deploy stream send --name data --transport local --into /srv/copy`,
      'Payload from stdin, same host',
    ],
    [
      `deploy stream receive --name volumes --into /srv/apps/notes/data --jsonl < framed`,
      'Target side (started by send over ssh; --from - is the default)',
    ],
    [
      `DEPLOY_PICKUP_CODE=123456 deploy stream receive --name database --from https://x.fastfilelink.com/abcd1234 --consumer '["pg_restore","-d","notes"]'`,
      'Target side of an ffl share',
    ],
    [
      `deploy stream cleanup --into /srv/apps/notes/data --run-id 20261121T202500Z-3fa9c1`,
      'Remove staging a failed run left',
    ],
    [
      `deploy stream cleanup --run-id 20261121T202500Z-3fa9c1`,
      'Source side: remove what a killed stream send of that run left (temp dirs, ssh master)',
    ],
  ],
  async run(context, args) {
    const action = String(args.action);
    if (action === 'cleanup') return runCleanup(args);
    if (typeof args.name !== 'string' || args.name === '')
      throw new UsageError('STREAM_NO_NAME', `stream ${action} needs --name`, {
        hint: 'Name the stream: --name volumes',
      });
    return action === 'send' ? runSend(context, args) : runReceive(context, args);
  },
};
