import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import {
  interpretExit,
  redact,
  settlesWithinIo,
  type AppFolder,
  type EventBus,
  type Host,
  type Phase,
  type PhaseStatus,
} from '@deploykit/core';
import { tailLines } from '@deploykit/host';
import { buildPhaseEnv, type PhaseContext } from './phase-env.js';
import { readSecretValues } from './secret-values.js';

/** Phases whose script must exist (validation enforces it); the rest are skipped when absent. */
export const REQUIRED_PHASES: readonly Phase[] = ['install', 'start', 'stop', 'backup', 'restore'];

/**
 * How long output may keep arriving after the script exited. A script's own last lines are in the
 * pipe by then; what is still open after it belongs to a process the script left behind.
 */
const OUTPUT_GRACE_MS = 250;

/**
 * Splits a stream into lines (LF or CRLF) as it arrives. `ended` resolves at its end, after the last
 * line, also one without a newline; `flush()` hands out that unfinished line early, for a stream
 * deploy stops reading before its end (readline keeps it until an end that may never come).
 */
function readLines(
  stream: NodeJS.ReadableStream,
  onLine: (line: string) => void,
): { ended: Promise<void>; flush(): void } {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  let flushed = false;
  const take = (text: string): void => {
    const parts = (rest + text).split('\n');
    rest = parts.pop() ?? '';
    for (const part of parts) onLine(part.endsWith('\r') ? part.slice(0, -1) : part);
  };
  const flush = (): void => {
    if (flushed) return;
    flushed = true;
    take(decoder.end());
    if (rest !== '') onLine(rest);
    rest = '';
  };
  stream.on('data', (chunk: Buffer) => {
    if (!flushed) take(decoder.write(chunk));
  });
  const ended = new Promise<void>((resolve) => {
    stream.once('end', () => {
      flush();
      resolve();
    });
    stream.once('close', resolve);
  });
  return { ended, flush };
}

/** Outcome of one bin/<phase> run: a union, never an exception for a failing script. */
export interface PhaseResult {
  readonly app: string;
  readonly phase: Phase;
  readonly status: PhaseStatus;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly durationMs: number;
  /** Last lines of stderr (secrets redacted). */
  readonly stderrTail: string;
  /** Why it was skipped or failed, in words. */
  readonly reason?: string;
}

/** Seconds a phase may run, from the manifest's timeouts (phase, then default, then 300). */
export function phaseTimeoutSeconds(app: AppFolder, phase: Phase): number {
  return app.manifest.timeouts[phase] ?? app.manifest.timeouts.default ?? 300;
}

/**
 * Runs bin/<phase> of an app on a host: cwd = app folder, the DEPLOY_* environment, a timeout that
 * kills the whole process group, output streamed line by line as `script.output` events (secrets
 * redacted) and the result interpreted in one place (0 ok, 75 skipped, else failed).
 */
export async function runPhase(options: {
  app: AppFolder;
  phase: Phase;
  host: Host;
  context: PhaseContext;
  bus: EventBus;
  extraEnv?: Record<string, string>;
  /** Arguments after the script's path (`bin/maintenance on`); most phases take none. */
  args?: readonly string[];
  timeoutSeconds?: number;
  /** Aborting stops the script's whole process group (Ctrl+C of the command running it). */
  signal?: AbortSignal;
}): Promise<PhaseResult> {
  const { app, phase, host, bus } = options;
  const script = join(app.dir, 'bin', phase);
  const base = { app: app.name, phase };
  try {
    await access(script, constants.X_OK);
  } catch {
    const required = REQUIRED_PHASES.includes(phase);
    const reason = required ? `bin/${phase} is missing or not executable` : `no bin/${phase} (optional)`;
    bus.emit('phase.end', {
      phase,
      app: app.name,
      level: required ? 'error' : 'info',
      message: reason,
      data: { status: required ? 'failed' : 'skipped' },
    });
    return {
      ...base,
      status: required ? 'failed' : 'skipped',
      exitCode: null,
      signal: null,
      timedOut: false,
      durationMs: 0,
      stderrTail: '',
      reason,
    };
  }
  const secrets = await readSecretValues(app);
  const timeoutSeconds = options.timeoutSeconds ?? phaseTimeoutSeconds(app, phase);
  bus.emit('phase.start', { phase, app: app.name, message: `${app.name}:${phase} started`, data: { timeoutSeconds } });
  const proc = host.spawn({
    argv: [script, ...(options.args ?? [])],
    cwd: app.dir,
    env: { ...buildPhaseEnv(app, phase, options.context), ...options.extraEnv },
    timeoutMs: timeoutSeconds * 1000,
    label: `${app.name}:${phase}`,
  });
  const emitLine =
    (channel: 'stdout' | 'stderr') =>
    (line: string): void => {
      bus.emit('script.output', {
        phase,
        app: app.name,
        level: 'info',
        message: redact(line, secrets),
        data: { channel },
      });
    };
  const outputs = [readLines(proc.stdout, emitLine('stdout')), readLines(proc.stderr, emitLine('stderr'))];
  const pumps = Promise.all(outputs.map((output) => output.ended));
  const stop = (): void => proc.kill('SIGTERM');
  options.signal?.addEventListener('abort', stop, { once: true });
  const result = await proc.wait().finally(() => options.signal?.removeEventListener('abort', stop));
  if (!(await settlesWithinIo(pumps, OUTPUT_GRACE_MS))) {
    // The script exited but something it left behind (a daemon bin/start did not detach) still holds
    // its stdout/stderr. Reading on would keep deploy alive for the daemon's whole life: stop here.
    for (const output of outputs) output.flush();
    proc.stdout.destroy();
    proc.stderr.destroy();
    bus.emit('script.detach', {
      phase,
      app: app.name,
      level: 'warn',
      message: `${app.name}:${phase}: bin/${phase} exited but left a process holding its stdout/stderr; deploy stopped reading them, so its next write there kills it (SIGPIPE). Detach it: setsid CMD </dev/null >>LOG 2>&1 &`,
    });
  }
  const status = interpretExit(result.exitCode, result.signal);
  const stderrTail = redact(tailLines(result.stderr, 15), secrets);
  let reason: string | undefined;
  if (result.timedOut) reason = `timed out after ${timeoutSeconds} s; its process group was killed`;
  else if (status === 'failed')
    reason = result.signal ? `killed by ${result.signal}` : `exited with code ${result.exitCode}`;
  else if (status === 'skipped') reason = 'the script reported nothing to do (exit 75)';
  bus.emit('phase.end', {
    phase,
    app: app.name,
    level: status === 'failed' ? 'error' : 'info',
    message: `${app.name}:${phase} ${status}${reason ? `: ${reason}` : ''}`,
    data: {
      status,
      exitCode: result.exitCode,
      signal: result.signal,
      durationMs: result.durationMs,
      timedOut: result.timedOut,
    },
  });
  return {
    ...base,
    status,
    exitCode: result.exitCode,
    signal: result.signal,
    timedOut: result.timedOut,
    durationMs: result.durationMs,
    stderrTail,
    ...(reason === undefined ? {} : { reason }),
  };
}
